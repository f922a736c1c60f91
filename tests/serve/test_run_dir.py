"""Where serving writes: into the run whose checkpoint it serves, else the config's run."""

from __future__ import annotations

from clinical_rlhf.config import load_config
from clinical_rlhf.serve.app import serving_run_dir


def test_the_served_checkpoints_run_receives_the_audit_log_and_feedback(tmp_path):
    checkpoint = tmp_path / "runs" / "demo-20261207-070000" / "checkpoints" / "iter-000040"
    cfg = load_config(None, [f"training.runs_dir={tmp_path / 'runs'}", f"serve.checkpoint={checkpoint}"])
    assert serving_run_dir(cfg) == tmp_path / "runs" / "demo-20261207-070000"


def test_without_a_checkpoint_in_a_run_the_configs_run_is_used(tmp_path):
    loose = tmp_path / "exported-adapter"
    for overrides in ([], [f"serve.checkpoint={loose}"]):
        cfg = load_config(None, [f"training.runs_dir={tmp_path / 'runs'}", "training.run_name=ward7", *overrides])
        assert serving_run_dir(cfg) == tmp_path / "runs" / "ward7"
