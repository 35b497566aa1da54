"""One RPC job in its own process: a job directory's request in, its outputs and times out.

`python -m deepc.rpc.worker JOBDIR` reads JOBDIR/job.json, loads the bundle (read_bundle
checks every checksum and extracts it into the server's cache), runs or times it, and writes
JOBDIR/result.json and one .npy per output. The server starts one per job, so a crash here
(a bad library, a signal) ends this process only. It imports the runtime, never a compiler.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deepc.errors import DeepcError
from deepc.runtime.loaders import load

JOB, RESULT = "job.json", "result.json"


def _specs(tensors: Any) -> list[dict[str, Any]]:
    return [t.to_dict() for t in tensors]


def run_job(job_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Do what job.json asks; returns what result.json should hold (outputs saved beside)."""
    model = load(job["bundle"])
    if model.emulated and not job.get("emulator"):
        raise DeepcError(f"the bundle is compiled for {model.bundle.triple}, not for this"
                         " machine; start the server with --emulator to run it under"
                         f" `{model.emulator}`, or serve it from such a board")
    result: dict[str, Any] = {"ok": True, "emulated": model.emulated,
                              "emulator": model.emulator, "target": model.bundle.target.get(
                                  "name"), "inputs": _specs(model.inputs),
                              "outputs": _specs(model.outputs)}
    if job["action"] == "check":
        return result
    if job.get("threads"):
        model.set_num_threads(int(job["threads"]))
    feeds = {name: np.load(job_dir / file, allow_pickle=False)
             for name, file in job["inputs"].items()}
    if job["action"] == "time":
        times = model.time_runs(feeds, runs=int(job["runs"]), warmup=int(job["warmup"]))
        result["seconds"] = list(times.seconds)
        result["threads"] = model.num_threads
        return result
    outputs = model.run(feeds)
    result["files"] = {}
    for k, (name, array) in enumerate(outputs.items()):
        np.save(job_dir / f"out{k}.npy", array, allow_pickle=False)
        result["files"][name] = f"out{k}.npy"
    return result


def main(argv: list[str]) -> int:
    job_dir = Path(argv[1])
    job = json.loads((job_dir / JOB).read_text())
    try:
        result = run_job(job_dir, job)
    except DeepcError as e:
        result = {"ok": False, "message": str(e), "exit_code": e.exit_code}
    (job_dir / RESULT).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
