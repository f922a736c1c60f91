"""One rank of a multi-process test run: `python worker.py TASKS.json OUT_DIR` with RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (harness.launch does it). Joins the gloo group the
way `clinical-rlhf train` does (`Distributed.from_environment`), runs each task's trainer and
writes `report-rank<r>.json` (one entry per task) and the trained weights."""

import json
import os
import sys
from pathlib import Path

import torch

import harness


def main(tasks_path: str, out_dir: str) -> None:
    from clinical_rlhf.errors import EmergencyStop
    from clinical_rlhf.rl.distributed import Distributed

    torch.set_num_threads(1)
    if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
        # DeepSpeed compiles a shared-memory all-reduce for CPU inference at start-up (~40 s on
        # first use, then cached); training never calls it, so the test workers skip the build.
        import deepspeed.comm.torch

        deepspeed.comm.torch.build_shm_op = lambda: None
    out = Path(out_dir)
    runtime = Distributed.from_environment(cpu=True)
    reports = {}
    try:
        for task in json.loads(Path(tasks_path).read_text()):
            cfg = harness.config(task["model_dir"], task["runs_dir"], task["run_name"], task.get("iterations", 3),
                                 max_unsafe_ratio=task.get("max_unsafe_ratio", 1.0))
            try:
                trainer, result, tracker, audit = harness.run_trainer(cfg, runtime, resume=task.get("resume"))
            except EmergencyStop as stop:  # raised on every rank, after rank 0 saved and audited
                reports[task["name"]] = {"status": "emergency_stop", "message": str(stop)}
                continue
            reports[task["name"]] = harness.report(task["name"], trainer, result, tracker, audit, out, runtime.rank)
            reports[task["name"]]["world_size"] = runtime.world_size
    finally:
        runtime.close()
    (out / f"report-rank{runtime.rank}.json").write_text(json.dumps(reports))


if __name__ == "__main__":
    main(*sys.argv[1:3])
