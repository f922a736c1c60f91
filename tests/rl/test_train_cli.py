"""`clinical-rlhf train` end to end in a subprocess, with the real guard, reward, audit log and
tracker on the tiny GPT-2: exit codes, messages and what lands in the run directory."""

import json
import subprocess
import sys

import pytest
import yaml

from clinical_rlhf.monitoring.runfiles import read_metrics

PROMPTS = ["I have chest pain and sweating, what should I do?", "How much paracetamol can I take in a day?",
           "Can I take ibuprofen with warfarin?", "My child has a fever and a rash, is that serious?"]


def write_config(tmp_path, model_dir, **training):
    for name in ("train", "eval"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = {
        "model": {"name": "clinical-demo", "path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        "training": {"runs_dir": str(tmp_path / "runs"), "run_name": "cli", "num_iterations": 2, "torch_threads": 1,
                     "prompts": str(tmp_path / "train.jsonl"), "eval_prompts": str(tmp_path / "eval.jsonl"),
                     "ppo": {"batch_size": 4, "mini_batch_size": 4, "micro_batch_size": 4, "max_new_tokens": 8},
                     "checkpoint": {"save_frequency": 1}} | training,
        # random tiny-model text is sometimes vetoed: no safety stop unless a test asks for one
        "safety": {"max_unsafe_ratio": 1.0, "audit": {"fsync": "never"}},
        "monitoring": {"alerts": []},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train(config, *extra):
    command = [sys.executable, "-c", "from clinical_rlhf.cli import main; main()", "train", "--config", str(config), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_train_resume_and_refusal_to_overwrite(tmp_path, tiny_gpt2_dir):
    from clinical_rlhf.safety import verify_audit_log

    config = write_config(tmp_path, tiny_gpt2_dir)
    done = train(config)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Held-out evaluation" in done.stdout and "unsafe ratio" in done.stdout
    run_dir = tmp_path / "runs" / "cli"
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert set(evaluation) == {"before", "after"} and evaluation["after"]["prompts"] == 4
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run_dir / "checkpoints" / "iter-000002" / "manifest.json").is_file()
    assert verify_audit_log(run_dir / "audit.jsonl").ok

    again = train(config)
    assert again.returncode == 3 and "already holds checkpoints" in again.stderr and "--resume auto" in again.stderr

    longer = train(config, "--set", "training.num_iterations=3", "--resume", "auto")
    assert longer.returncode == 0, longer.stderr[-2000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2, 2, 3]  # the resume mark sits before iteration 3
    assert records[2]["resumed_from"] == 2 and [step for step, _ in read_metrics(run_dir)] == [1, 2, 3]
    assert json.loads((run_dir / "evaluation.json").read_text())["before"] == evaluation["before"]


@pytest.mark.slow
def test_emergency_stop_exits_10_with_one_message(tmp_path, tiny_gpt2_dir):
    config = write_config(tmp_path, tiny_gpt2_dir)
    data = yaml.safe_load(config.read_text())
    data["monitoring"] = {"alerts": [{"name": "safety_violation", "condition": "unsafe_ratio >= 0.0",
                                      "severity": "critical", "action": "emergency_stop"}]}
    config.write_text(yaml.safe_dump(data))
    stopped = train(config)
    assert stopped.returncode == 10
    assert "emergency stop at iteration 1" in stopped.stderr and "Traceback" not in stopped.stderr
    assert (tmp_path / "runs" / "cli" / "checkpoints" / "emergency_stop-000001").is_dir()
    events = [json.loads(line)["event"] for line in (tmp_path / "runs" / "cli" / "audit.jsonl").read_text().splitlines()]
    assert "alert" in events and events[-2:] == ["emergency_stop", "run_end"]
