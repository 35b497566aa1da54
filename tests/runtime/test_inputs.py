"""Run-time input checks: index inputs within the table they select from, as onnxruntime
refuses them; --input file specs; all are InputErrors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepc.errors import InputError
from deepc.runtime.inputs import check_index_ranges, load_input_files


@pytest.mark.parametrize("ids", [[0, 9], [-10, 9], [], [[3]]])
def test_ids_in_range_pass(ids: list) -> None:
    check_index_ranges({"ids": np.array(ids, np.int64)}, {"ids": 10})


@pytest.mark.parametrize(("ids", "bad"), [([0, 10], 10), ([-11, 2], -11), ([99, -50], 99)])
def test_ids_out_of_range_are_refused(ids: list, bad: int) -> None:
    with pytest.raises(InputError, match=f"index {bad}, outside \\[-10, 9\\]"):
        check_index_ranges({"ids": np.array(ids, np.int32)}, {"ids": 10})


def test_only_bounded_integer_inputs_are_checked() -> None:
    check_index_ranges({"x": np.full(3, 1e9, np.float32), "ids": np.array([1])}, {"ids": 2})


def test_input_file_specs(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(3))
    assert load_input_files([f"a={tmp_path / 'a.npy'}"])["a"].tolist() == [0, 1, 2]
    for spec in ("a", f"a={tmp_path / 'nope.npy'}", f"={tmp_path / 'a.npy'}"):
        with pytest.raises(InputError):
            load_input_files([spec])
