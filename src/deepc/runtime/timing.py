"""Timing a run the same way for every runtime: untimed warm-up runs, then each timed run."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_calls(run: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Seconds of each of `runs` calls of `run`, after `warmup` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times
