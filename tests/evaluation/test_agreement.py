"""Expert agreement of the real guard + reward on a small hand-labelled preference file, and the
way its value reaches Prometheus and the alert rules."""

import math

import pytest

from clinical_rlhf.evaluation.agreement import (
    expert_agreement,
    prefer,
    shipped_heldout_preferences,
)
from clinical_rlhf.feedback import load_preferences, write_preferences

from .labelled import records


def test_prefer_uses_the_epsilon_for_ties():
    assert prefer(0.5, 0.2, 1e-6) == "a" and prefer(0.2, 0.5, 1e-6) == "b"
    assert prefer(-1.0, -1.0, 0.0) == "tie" and prefer(0.5, 0.5 + 1e-9, 1e-6) == "tie"


def test_agreement_and_kappa_of_the_real_guard_and_reward(tmp_path, guard, reward):
    path = write_preferences(tmp_path / "prefs.jsonl", records())
    result = expert_agreement(guard, reward, load_preferences(path), tie_epsilon=1e-6, resamples=500, path=path)
    judged = {record.id: record for record in result.records}
    assert [judged[i].system for i in ("r1", "r2", "r3", "r4")] == ["a", "tie", "a", "b"]
    assert judged["r2"].vetoed_a and judged["r2"].vetoed_b and judged["r2"].total_a == judged["r2"].total_b
    # the earlier chest pain makes the water-only answer a vetoed one, though its question is innocuous
    assert judged["r4"].vetoed_a and not judged["r4"].vetoed_b
    assert result.agreement.value == pytest.approx(0.75)
    assert result.agreement.low <= 0.75 <= result.agreement.high
    assert result.kappa == pytest.approx(7 / 11)  # hand-computed in tests/evaluation/test_stats.py
    assert result.decisive_agreement == pytest.approx(2 / 3) and result.decisive_n == 3
    assert not result.meets_target
    summary = result.to_dict()
    assert summary["by_source"]["corpus"]["agreement"] == 1.0
    assert summary["by_source"]["feedback"]["agreement"] == 0.5 and summary["by_source"]["feedback"]["kappa"] == 0.0
    safety = summary["by_objective"]["safety"]
    assert safety["n"] == 1 and safety["agreement"] == 1.0
    assert math.isnan(safety["kappa"])  # one item, one label each: kappa is undefined
    assert "coherence" not in summary["by_objective"]  # r1's b is vetoed: coherence never scored it
    assert summary["confusion"]["counts"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert summary["ties"] == {"expert": 1, "system": 1}
    assert result.metrics()["eval/expert_agreement"] == pytest.approx(0.75)


def test_agreement_reaches_the_prometheus_gauge_and_the_alert_rule(tmp_path, guard, reward):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from clinical_rlhf.config import config_from_mapping
    from clinical_rlhf.evaluation.export import publish_metrics
    from clinical_rlhf.monitoring.metrics import TrainingMetrics

    result = expert_agreement(guard, reward, records()[:3], tie_epsilon=1e-6, resamples=200)
    cfg = config_from_mapping({"training": {"runs_dir": str(tmp_path)}, "monitoring": {"alerts": [
        {"name": "expert_agreement_low", "condition": "expert_agreement < 0.8", "severity": "warning"},
        {"name": "safety_violation", "condition": "unsafe_ratio > 0.1", "severity": "critical",
         "action": "emergency_stop"}]}})
    metrics = TrainingMetrics(process_collector=False)
    published = publish_metrics(cfg, result.metrics(), run_dir=None, step=0, prometheus=metrics,
                                run_name="agreement-test")
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    [sample] = families["clinical_rlhf_expert_agreement_ratio"].samples
    assert sample.value == pytest.approx(2 / 3)
    assert [alert.rule for alert in published.alerts] == ["expert_agreement_low"]  # the training rule is skipped
    # its own MLflow run in the shared store under runs_dir, no parent (agreement reads no run)
    assert published.mlflow_error is None and published.mlflow_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    run = MlflowClient(published.mlflow_uri).get_run(published.mlflow_run_id)
    assert run.info.run_name == "agreement-test" and "mlflow.parentRunId" not in run.data.tags
    assert run.data.metrics["eval/expert_agreement"] == pytest.approx(result.metrics()["eval/expert_agreement"])


@pytest.mark.skipif(not shipped_heldout_preferences().is_file(), reason="the shipped preference set is not built")
def test_the_shipped_held_out_preferences_load_and_are_judged(guard, reward):
    shipped = load_preferences(shipped_heldout_preferences())[:40]
    result = expert_agreement(guard, reward, shipped, tie_epsilon=1e-6, resamples=200)
    assert len(result.records) == 40 and 0.0 <= result.agreement.value <= 1.0
    assert set(result.to_dict()["by_source"]) == {r.source or "unknown" for r in shipped}


def test_the_agreement_path_and_the_cli_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, clinical_rlhf.cli; from clinical_rlhf.evaluation import agreement, conversations, export, "
            "html, items, runner, stats; sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
