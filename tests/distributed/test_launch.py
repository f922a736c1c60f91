"""The real thing: `accelerate launch --config_file config/accelerate/ddp.yaml --num_processes 2
main.py train ...` on the tiny GPT-2 with the real guard, reward, audit log and tracker. Without
a GPU accelerate starts two torchrun workers and the trainer joins them over gloo.

(`accelerate launch --cpu --num_processes 2` is NOT a two-process launch: accelerate runs a
single process for --cpu unless mpirun is configured, so it is not used here.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from .harness import REPO, _free_port

PROMPTS = ["I have chest pain and sweating, what should I do?", "How much paracetamol can I take in a day?",
           "Can I take ibuprofen with warfarin?", "My child has a fever and a rash, is that serious?"]


def write_config(tmp_path, model_dir):
    for name in ("train", "eval"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = {
        "model": {"name": "clinical-demo", "path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        "training": {"runs_dir": str(tmp_path / "runs"), "run_name": "ddp", "num_iterations": 2, "torch_threads": 1,
                     "prompts": str(tmp_path / "train.jsonl"), "eval_prompts": str(tmp_path / "eval.jsonl"),
                     "eval_size": 2, "checkpoint": {"save_frequency": 1},
                     "ppo": {"batch_size": 4, "mini_batch_size": 4, "micro_batch_size": 2, "max_new_tokens": 8}},
        "safety": {"max_unsafe_ratio": 1.0, "audit": {"fsync": "never"}},
        # metrics.jsonl and events.jsonl are still written; MLflow's store would only add start-up time
        "monitoring": {"alerts": [], "tracking": {"enabled": False}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def launch(config, *extra, accelerate_config: str = "ddp.yaml"):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "config" / "accelerate" / accelerate_config), "--num_processes", "2",
               "--main_process_port", str(_free_port()), str(REPO / "main.py"), "train", "--config", str(config),
               *extra]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


def assert_two_process_run(done, tmp_path) -> Counter:
    """What every launch of `write_config`'s 2-iteration run leaves, whatever the strategy: exit 0,
    one intact audit chain with one run_start/run_end and every answer of both shards checked
    once, a checkpoint per iteration, world size 2 in the metrics. Returns the audit event counts."""
    from clinical_rlhf.safety import verify_audit_log

    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "ddp"
    assert verify_audit_log(run_dir / "audit.jsonl").ok
    events = Counter(json.loads(line)["event"] for line in (run_dir / "audit.jsonl").read_text().splitlines())
    assert events["run_start"] == 1 and events["run_end"] == 1 and events["guard_check"] == 2 * 4
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["iter-000001", "iter-000002"]
    metrics = [json.loads(line)["metrics"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["system/world_size"] for m in metrics] == [2.0, 2.0]
    return events


@pytest.mark.slow
def test_accelerate_launch_trains_with_rank_zero_writing_everything(tmp_path, tiny_gpt2_dir):
    done = launch(write_config(tmp_path, tiny_gpt2_dir))
    events = assert_two_process_run(done, tmp_path)
    assert done.stdout.count("Held-out evaluation") == 1  # rank 0 prints, rank 1 stays silent
    run_dir = tmp_path / "runs" / "ddp"
    assert sorted(path.name for path in run_dir.iterdir() if path.suffix == ".jsonl") == \
        ["audit.jsonl", "events.jsonl", "metrics.jsonl"]
    assert events["checkpoint"] == 3  # iterations 1 and 2, and the final save of iteration 2
