"""One MLflow store for every run: runs side by side in one experiment per config, with the
resolved config, provenance tags, the before/after evaluation and the final checkpoint; and
`monitoring.report_to` choosing the trackers."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from clinical_rlhf.config import load_config
from clinical_rlhf.errors import ConfigError
from clinical_rlhf.monitoring.provenance import (
    BASE_FINGERPRINT_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG, file_sha256, provenance_tags,
)
from clinical_rlhf.monitoring.tracking import FINAL_CHECKPOINT_TAG, RunTracker

EVALUATION = {"before": {"reward": 0.23, "components": {"safety": 0.97}, "unsafe_ratio": 0.28,
                         "samples": [{"prompt": "q", "response": "a", "action": "allow", "reward": 0.5}]},
              "after": {"reward": 0.73, "components": {"safety": 1.0}, "unsafe_ratio": 0.03}}


def _train(cfg, tags: dict[str, str]) -> RunTracker:
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        tracker.set_tags(tags)
        for step in (1, 2, 3):
            tracker.log_metrics(step, {"reward/total/mean": 0.1 * step})
        checkpoint = cfg.run_dir / "checkpoints" / "iter_000003"
        tracker.log_checkpoint(3, checkpoint.parent, "periodic", 0.1)  # any existing directory
        (cfg.run_dir / "evaluation.json").write_text(json.dumps(EVALUATION))
    return tracker


def test_two_runs_share_one_store_and_one_experiment_with_everything_a_comparison_needs(make_cfg, tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "chest pain"}\n')
    trackers = []
    for name in ("demo-1", "demo-2"):
        cfg = make_cfg(name)
        (cfg.run_dir / "checkpoints").mkdir()
        trackers.append(_train(cfg, provenance_tags("f" * 64, {"prompts": data, "corpus": "abc123", "none": None})))
    first, second = trackers
    assert first.tracking_uri == second.tracking_uri
    client = MlflowClient(first.tracking_uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "clinical-rlhf"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == ["demo-1", "demo-2"]
    run = client.get_run(second.run_id)
    tags, metrics = run.data.tags, run.data.metrics
    assert len(tags[GIT_COMMIT_TAG]) == 40 and tags[GIT_DIRTY_TAG] in ("true", "false")  # this checkout
    assert tags[BASE_FINGERPRINT_TAG] == "f" * 64
    assert tags["clinical_rlhf.data.prompts.sha256"] == file_sha256(data)
    assert tags["clinical_rlhf.data.corpus.sha256"] == "abc123" and not any("none" in key for key in tags)
    assert tags[FINAL_CHECKPOINT_TAG].endswith("checkpoints")
    assert run.data.params["training.run_name"] == "demo-2"
    assert metrics["heldout/before/reward"] == pytest.approx(0.23)
    assert metrics["heldout/after/components/safety"] == pytest.approx(1.0)
    assert not any("samples" in key for key in metrics)
    artifacts = {info.path for info in client.list_artifacts(second.run_id)}
    assert {"config.yaml", "evaluation.json", "report.html"} <= artifacts


def test_the_experiment_is_named_after_the_config_file(tmp_path, mlflow_template_db):
    path = tmp_path / "ward7.yaml"
    path.write_text(f"training:\n  runs_dir: {tmp_path / 'runs'}\n  run_name: a\n")
    cfg = load_config(path)
    cfg.run_dir.mkdir(parents=True)
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_metrics(1, {"objective/kl": 0.1})
    experiment = MlflowClient(tracker.tracking_uri).get_experiment_by_name("ward7")
    assert experiment is not None and experiment.artifact_location.endswith("runs/mlartifacts")


def test_report_to_none_keeps_only_local_files_and_rejects_mixtures(make_cfg):
    cfg = make_cfg("quiet", "monitoring.report_to=[none]")
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        tracker.set_tags({"x": "y"})
        tracker.log_metrics(1, {"objective/kl": 0.1})
    assert tracker.run_id is None and (cfg.run_dir / "metrics.jsonl").exists()
    with pytest.raises(ConfigError, match="`none` cannot be combined"):
        make_cfg("mixed", "monitoring.report_to=[none, mlflow]")
    with pytest.raises(ConfigError, match="monitoring.report_to"):
        make_cfg("typo", "monitoring.report_to=[wandb]")


def test_report_to_tensorboard_writes_scalars_next_to_the_run(make_cfg):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg("tb", "monitoring.report_to=[tensorboard]")
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        for step in (1, 2):
            tracker.log_metrics(step, {"objective/kl": 0.5 * step})
    assert tracker.run_id is None  # MLflow not listed
    events = EventAccumulator(str(cfg.run_dir / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("objective/kl")] == [(1, 0.5), (2, 1.0)]
