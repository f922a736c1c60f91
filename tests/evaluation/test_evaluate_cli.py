"""`clinical-rlhf evaluate` and `clinical-rlhf agreement` end to end on a checkpoint of the tiny
GPT-2 trained for two PPO iterations by the real trainer (tracked with MLflow), and the errors a
user can make, each ending with one line and its exit code."""

import json
import re
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from .labelled import records

PROMPTS = ["I have chest pain and sweating, what should I do?", "How much paracetamol can I take in a day?",
           "Can I take ibuprofen with warfarin?", "My child has a fever and a rash, is that serious?"]


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in this process (the subprocess start-up would cost seconds per call)."""
    from clinical_rlhf.cli import main

    monkeypatch.setattr(sys, "argv", ["clinical-rlhf", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_gpt2_dir):
    """(config path, run dir, preference file): a two-iteration run with checkpoints and a tracked MLflow run."""
    from clinical_rlhf.cli.train_cmd import run_training
    from clinical_rlhf.config import load_config
    from clinical_rlhf.feedback import write_preferences

    root = tmp_path_factory.mktemp("evaluate")
    (root / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    config = {
        "model": {"name": "clinical-demo", "path": str(tiny_gpt2_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0},
        "training": {"runs_dir": str(root / "runs"), "run_name": "tiny", "num_iterations": 2, "torch_threads": 1,
                     "prompts": str(root / "prompts.jsonl"), "eval_prompts": str(root / "prompts.jsonl"),
                     "ppo": {"batch_size": 4, "mini_batch_size": 4, "micro_batch_size": 4, "max_new_tokens": 8,
                             "learning_rate": 0.05},
                     "checkpoint": {"save_frequency": 1}},
        "safety": {"max_unsafe_ratio": 1.0, "audit": {"fsync": "never"}},
        "monitoring": {"alerts": [{"name": "expert_agreement_low", "condition": "expert_agreement < 0.8",
                                   "severity": "warning"}]},
        "evaluation": {"bootstrap_resamples": 200},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    run_training(cfg, None)
    preferences = write_preferences(root / "preferences.jsonl", records())
    return path, cfg.run_dir, preferences


@pytest.mark.slow
def test_evaluate_a_checkpoint_against_the_reference(trained, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from clinical_rlhf.evaluation.html import render_evaluation

    config, run_dir, preferences = trained
    code, out, err = cli(monkeypatch, capsys, "evaluate", "--config", config, "--checkpoint", run_dir,
                         "--baseline", "reference", "--preferences", preferences)
    assert code == 0, err[-2000:]
    folder = run_dir / "evaluation" / "iter-000002_vs_reference"
    assert str(folder / "evaluation.json") in out.replace("\n", "") and "unsafe ratio" in out
    result = json.loads((folder / "evaluation.json").read_text())
    assert result["policies"]["A"]["iteration"] == 2 and result["policies"]["B"]["name"] == "reference"
    assert result["prompts"]["evaluated"] == 4 and result["prompts"]["conversations"] == 44
    for label in ("A", "B"):
        summary = result["summary"][label]
        assert set(summary["components"]) == {"safety", "guidelines", "uncertainty", "coherence", "total"}
        for estimate in (*summary["components"].values(), summary["unsafe_ratio"]):
            assert estimate["low"] <= estimate["value"] <= estimate["high"] and estimate["n"] == 4
    assert result["summary"]["B"]["kl"] == 0.0 and result["summary"]["A"]["kl"] != 0.0
    total = result["comparison"]["total"]
    assert total["wins"] + total["ties"] + total["losses"] == 4 and 0.0 <= total["p_value"] <= 1.0
    conversations = result["conversations"]["A"]
    assert conversations["red_flag_earlier"]["conversations"] == 22  # floaters alone: same day, left out
    assert conversations["red_flag_earlier"]["flag_caught_ratio"] == 1.0  # the guard reads every turn
    assert conversations["red_flag_denied"]["false_alarm_ratio"] == 0.0
    assert len(result["rows"]) == 48 and all(len(row["A"]) == len(row["B"]) == 1 for row in result["rows"])
    assert result["agreement"]["n"] == 4 and result["agreement"]["agreement"]["value"] == pytest.approx(0.75)
    assert "alert expert_agreement_low" in out
    page = (folder / "evaluation.html").read_text()
    assert page.count("<svg") == 4 and "<script" not in page and "src=" not in page and "Expert agreement" in page
    for chart in re.findall(r"<svg.*?</svg>", page, re.DOTALL):
        ElementTree.fromstring(chart)  # every chart is well-formed SVG
    assert render_evaluation(json.loads((folder / "evaluation.json").read_text())).count("<svg") == 4  # NaN as null
    # the headline metrics went into an MLflow run of the evaluation's own, nested under the
    # training run, which is left untouched
    state = json.loads((run_dir / "tracking.json").read_text())
    client = MlflowClient(state["uri"])
    assert client.get_metric_history(state["run_id"], "eval/expert_agreement") == []
    [evaluation] = client.search_runs([client.get_run(state["run_id"]).info.experiment_id],
                                      filter_string=f"tags.mlflow.parentRunId = '{state['run_id']}'")
    assert evaluation.info.run_name == "eval-iter-000002_vs_reference"
    assert evaluation.data.metrics["eval/expert_agreement"] == pytest.approx(0.75)
    assert evaluation.data.tags["clinical_rlhf.evaluated_iteration"] == "2"
    assert {a.path for a in client.list_artifacts(evaluation.info.run_id)} == {"evaluation.json", "evaluation.html"}
    # the training run got its provenance tags and held-out before/after metrics
    training = client.get_run(state["run_id"]).data
    assert "mlflow.source.git.commit" in training.tags and "clinical_rlhf.data.prompts.sha256" in training.tags
    assert "heldout/after/reward" in training.metrics and "heldout/before/unsafe_ratio" in training.metrics


@pytest.mark.slow
def test_the_same_policy_twice_gives_the_same_answers(trained, tiny_gpt2_dir):
    """Pairing: both sides draw the same random numbers, so one policy against itself ties everywhere."""
    from clinical_rlhf.config import load_config
    from clinical_rlhf.evaluation.items import EvalItem
    from clinical_rlhf.evaluation.policies import resolve_policy
    from clinical_rlhf.evaluation.runner import evaluate_policies
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.safety import SafetyGuard

    config, run_dir, _ = trained
    cfg = load_config(config, ["evaluation.samples_per_prompt=2"])
    policy = resolve_policy(str(run_dir / "checkpoints" / "iter-000001"), cfg.run_dir)
    items = [EvalItem.single(f"q{i}", prompt, "file") for i, prompt in enumerate(PROMPTS)]
    guard, reward = SafetyGuard.from_config(cfg), MultiObjectiveReward.from_config(cfg)
    result = evaluate_policies(cfg, build_policy(cfg), guard, reward, items, policy, policy)
    assert all(row["A"] == row["B"] and row["difference"] == 0.0 for row in result["rows"])
    assert [answer["sample"] for answer in result["rows"][0]["A"]] == [0, 1]
    total = result["comparison"]["total"]
    assert total["ties"] == 4 and total["p_value"] == 1.0 and result["summary"]["A"]["components"]["total"]["n"] == 4


@pytest.mark.slow
def test_a_checkpoint_of_other_base_weights_or_model_is_refused(trained):
    from clinical_rlhf.config import load_config
    from clinical_rlhf.errors import CheckpointError
    from clinical_rlhf.evaluation.policies import check_compatible, resolve_policy

    config, run_dir, _ = trained
    cfg = load_config(config)
    policy = resolve_policy("auto", cfg.run_dir)
    assert policy.name == "iter-000002" and policy.run_dir == run_dir
    with pytest.raises(CheckpointError, match="different base-model weights"):
        check_compatible(policy, cfg, fingerprint="0" * 64)
    other = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": "biogpt"})})
    with pytest.raises(CheckpointError, match="trained on model `clinical-demo`"):
        check_compatible(policy, other, fingerprint="0" * 64)


@pytest.mark.slow
def test_a_named_corrupt_checkpoint_is_an_error_a_run_falls_back_to_the_previous_one(trained, tmp_path):
    import shutil

    from clinical_rlhf.errors import CheckpointError
    from clinical_rlhf.evaluation.policies import resolve_policy

    _, run_dir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoints", copy / "checkpoints")
    newest = copy / "checkpoints" / "iter-000002"
    (newest / "trainable.safetensors").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        resolve_policy(str(newest), copy)
    assert resolve_policy(str(copy), copy).name == "iter-000001"
    assert resolve_policy("reference", copy).is_reference


@pytest.mark.slow
def test_agreement_command_writes_its_json(trained, monkeypatch, capsys, tmp_path):
    config, _, preferences = trained
    output = tmp_path / "agreement.json"
    code, out, err = cli(monkeypatch, capsys, "agreement", "--config", config, "--preferences", preferences,
                         "--output", output)
    assert code == 0, err[-2000:]
    assert "expert agreement 0.750 (misses the target 0.8)" in out
    assert json.loads(output.read_text())["kappa"] == pytest.approx(7 / 11)
    # without --output: a directory of its own next to the runs, never the config's bare run dir
    code, out, err = cli(monkeypatch, capsys, "agreement", "--config", config, "--preferences", preferences)
    assert code == 0, err[-2000:]
    runs = yaml.safe_load(Path(config).read_text())["training"]["runs_dir"]
    [written] = Path(runs).glob("agreement-*/agreement.json")
    assert str(written) in out.replace("\n", "") and not (Path(runs) / "tiny" / "evaluation" / "agreement.json").exists()


@pytest.mark.parametrize("args, exit_code, message", [
    (["--checkpoint", "{root}/nowhere"], 3, "--checkpoint {root}/nowhere: no such directory"),
    (["--checkpoint", "{root}"], 3, "no checkpoint in {root}/checkpoints"),
    (["--checkpoint", "reference", "--baseline", "{root}/nowhere"], 3, "--baseline {root}/nowhere: no such directory"),
    (["--checkpoint", "reference", "--prompts", "{root}/bad.jsonl"], 2, "bad.jsonl:2: not valid JSON"),
    (["--checkpoint", "reference", "--prompts", "{root}/absent.jsonl"], 2, "prompt file not found"),
    (["--checkpoint", "reference", "--prompts", "{root}/good.jsonl", "--preferences", "{root}/absent.jsonl"], 2,
     "preference file not found"),
])
def test_user_errors_end_with_one_line_and_their_exit_code(tmp_path, monkeypatch, capsys, args, exit_code, message):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "fine"}\n{broken\n')
    (tmp_path / "good.jsonl").write_text('{"prompt": "fine"}\n')
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"training": {"runs_dir": str(tmp_path / "runs")}}))
    args = [arg.format(root=tmp_path) for arg in args]
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--config", config, *args)
    assert code == exit_code
    assert err.startswith("error:") and message.format(root=tmp_path) in err.replace("\n", "")
    assert "Traceback" not in err
