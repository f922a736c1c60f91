"""`clinical-rlhf preferences validate|build|quarantine`, `fit-weights` and `train-reward`."""

import json
import subprocess
import sys

import pytest
import typer
import yaml
from typer.testing import CliRunner

from clinical_rlhf.cli.feedback_cmd import register
from clinical_rlhf.config import config_from_mapping
from clinical_rlhf.feedback import load_preferences, write_preferences
from clinical_rlhf.feedback.builder import shipped_paths
from clinical_rlhf.feedback.quarantine import QuarantinedCorrection, append_quarantined
from clinical_rlhf.safety import SafetyGuard


@pytest.fixture
def app():
    app = typer.Typer()
    register(app)
    return app


def invoke(app, *args):
    return CliRunner().invoke(app, [str(arg) for arg in args])


def test_validate_lists_each_file(app):
    train, heldout = shipped_paths()
    result = invoke(app, "preferences", "validate", train, heldout)
    assert result.exit_code == 0, result.output
    assert "train.jsonl" in result.output and "heldout.jsonl" in result.output
    assert str(len(load_preferences(heldout))) in result.output


def test_validate_fails_with_every_bad_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\nnot json\n', encoding="utf-8")
    command = [sys.executable, "-c", "from clinical_rlhf.cli import main; main()", "preferences", "validate", str(bad)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "bad.jsonl:1: missing" in done.stderr and "bad.jsonl:2: not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr


def test_build_writes_a_set_from_the_configured_corpus(app, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("demo_model:\n  corpus_size: 200\n", encoding="utf-8")
    result = invoke(app, "preferences", "build", "--out", tmp_path / "set", "--config", config, "--seed", 3)
    assert result.exit_code == 0, result.output
    train = load_preferences(tmp_path / "set" / "train.jsonl")
    heldout = load_preferences(tmp_path / "set" / "heldout.jsonl")
    assert len(train) > 100 and heldout
    assert "corpus/exceeds_max_dose" in result.output


def test_fit_weights_prints_a_table_a_valid_snippet_and_writes_json(app, tmp_path):
    _, heldout = shipped_paths()
    config = tmp_path / "config.yaml"
    config.write_text("{}\n", encoding="utf-8")
    out = tmp_path / "fit.json"
    result = invoke(app, "fit-weights", "--config", config, "--train", heldout, "--heldout", heldout,
                    "--bootstrap", 20, "--json", out)
    assert result.exit_code == 0, result.output
    assert "configured weights" in result.output and "learned weights" in result.output
    snippet = yaml.safe_load(result.output[result.output.index("reward:\n  weights:"):])
    weights = config_from_mapping(snippet).reward.weights  # validates: four names, >= 0, sum 1
    assert sum(weights.model_dump().values()) == pytest.approx(1.0)
    data = json.loads(out.read_text())
    assert set(data["weights"]) == {"safety", "guidelines", "uncertainty", "coherence"}
    assert data["agreement"]["heldout"]["pairs"] == data["pairs"] and data["snippet"] == snippet["reward"]["weights"]
    assert data["left_out"]["vetoed"] > 0 and data["guard"] is True


def test_train_reward_reports_accuracy_and_writes_the_model(app, tmp_path, tiny_gpt2_dir):
    train, heldout = shipped_paths()
    write_preferences(tmp_path / "train.jsonl", load_preferences(train)[:24])
    write_preferences(tmp_path / "heldout.jsonl", load_preferences(heldout)[:12])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"path": str(tiny_gpt2_dir), "device": "cpu", "dtype": "float32"},
        "training": {"runs_dir": str(tmp_path / "runs"), "run_name": "rm", "torch_threads": 1},
        "reward_model": {"lora_r": 4, "lora_alpha": 8, "max_length": 96, "batch_size": 8,
                         "train_file": str(tmp_path / "train.jsonl"), "heldout_file": str(tmp_path / "heldout.jsonl")},
    }), encoding="utf-8")
    result = invoke(app, "train-reward", "--config", config)
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output and "corpus/" in result.output
    assert (tmp_path / "runs" / "rm" / "reward_model" / "manifest.json").is_file()
    assert "reward.learned_model=" in result.output


# -- preferences quarantine: corrections the guard rejected, listed for review ---------------------

def _quarantine_file(tmp_path):
    question, correction = "Is 2 g of paracetamol every 4 hours ok for my back pain?", "Yes, that's fine."
    verdict = SafetyGuard().check(question, correction)
    assert verdict.action == "reject"
    path = tmp_path / "quarantine.jsonl"
    append_quarantined(path, QuarantinedCorrection(
        id="quarantine-1", completion_id="chatcmpl-1", prompt=question, corrected_answer=correction,
        served_answer="No: at most 4 g in 24 hours, 1 g at a time, at least 4 hours apart. " * 5,
        annotator="dr-okafor", created="2026-12-07T14:00:00Z",
        verdict={"action": verdict.action, "reason_code": verdict.flags[0].category,
                 "flags": [{"category": f.category, "rule_id": f.rule_id} for f in verdict.flags]}), fsync=False)
    return path, verdict


def test_quarantine_lists_each_rejected_correction_with_its_rules(app, tmp_path):
    path, verdict = _quarantine_file(tmp_path)
    result = invoke(app, "preferences", "quarantine", path, "--width", 40)
    assert result.exit_code == 0, result.output
    assert "quarantine-1" in result.output and "dr-okafor" in result.output
    assert f"{verdict.flags[0].category}/{verdict.flags[0].rule_id}" in result.output
    assert "Yes, that's fine." in result.output
    served_line = next(line for line in result.output.splitlines() if line.strip().startswith("served:"))
    assert served_line.endswith("…") and len(served_line.split("served: ", 1)[1]) == 40
    assert "1 quarantined correction(s)" in result.output


def test_quarantine_json_prints_the_records_as_stored(app, tmp_path):
    path, _ = _quarantine_file(tmp_path)
    result = invoke(app, "preferences", "quarantine", path, "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.output.splitlines()] == \
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_quarantine_refuses_a_preference_file_with_the_line_named(tmp_path):
    train, _ = shipped_paths()
    command = [sys.executable, "-c", "from clinical_rlhf.cli import main; main()", "preferences", "quarantine",
               str(train)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"{train}:1: not a quarantined correction" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
