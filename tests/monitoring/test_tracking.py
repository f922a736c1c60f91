"""RunTracker against a real MLflow SQLite store, including a store that fails mid-run."""

from __future__ import annotations

import json
import math
import socket
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from clinical_rlhf.cli import app
from clinical_rlhf.errors import ClinicalRLHFError, EmergencyStop
from clinical_rlhf.monitoring.mlflow_sink import PENDING_FILE, STATE_FILE, mlflow_client, replay_pending
from clinical_rlhf.monitoring.runfiles import read_metrics
from clinical_rlhf.monitoring.tracking import RunTracker


class CountingClient:
    """A real MlflowClient that records the name of every call made through it."""

    def __init__(self, uri: str) -> None:
        self.inner = mlflow_client(uri)
        self.calls: list[str] = []

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return call


def metrics_at(step: int) -> dict[str, float]:
    return {"objective/kl": 0.1 * step, "safety/unsafe_ratio": 0.01 * step, "reward/safety/mean": 0.9}


def mlflow_history(tracker: RunTracker, key: str) -> dict[int, float]:
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    return {m.step: m.value for m in client.get_metric_history(tracker.run_id, key)}


def test_default_store_params_batched_metrics_artifacts_and_status(make_cfg):
    cfg = make_cfg("tracked")
    clients: list[CountingClient] = []

    def factory(uri):
        clients.append(CountingClient(uri))
        return clients[-1]

    artifact = cfg.run_dir / "adapter"
    artifact.mkdir()
    (artifact / "adapter_model.safetensors").write_bytes(b"weights")
    (cfg.run_dir / "audit.jsonl").write_text("{}\n")
    with RunTracker(cfg, cfg.run_dir, client_factory=factory) as tracker:
        tracker.log_params(cfg)
        calls_before = len(clients[0].calls)
        for step in range(1, 4):
            tracker.log_metrics(step, metrics_at(step))
        metric_calls = clients[0].calls[calls_before:]
        tracker.log_event(3, "rollback", "warning", "restored step 1", restored_step=1)
        tracker.log_artifact(artifact)
    assert tracker.tracking_uri == f"sqlite:///{(cfg.training.runs_dir / 'mlflow.db').resolve()}"  # shared
    assert metric_calls == ["log_batch"] * 3  # one batched call per iteration
    run = MlflowClient(tracking_uri=tracker.tracking_uri).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["training.run_name"] == "tracked"
    assert run.data.params["training.ppo.clip_range"] == "0.2"
    assert json.loads(run.data.params["monitoring.alerts"])[0]["name"] == "safety_violation"
    assert mlflow_history(tracker, "objective/kl") == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    stored = {info.path for info in client.list_artifacts(tracker.run_id)}
    stored |= {info.path for info in client.list_artifacts(tracker.run_id, "adapter")}
    # The adapter logged by the caller; the resolved config; the report (written on exit) and the audit log.
    assert stored == {"adapter", "adapter/adapter_model.safetensors", "config.yaml", "report.html", "audit.jsonl"}
    assert list((cfg.training.runs_dir / "mlartifacts").rglob("adapter_model.safetensors"))  # next to the store
    # Local files: metrics.jsonl (what the report reads), events.jsonl, config.yaml.
    assert read_metrics(cfg.run_dir) == [(s, pytest.approx(metrics_at(s))) for s in (1, 2, 3)]
    events = [json.loads(line) for line in (cfg.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["run_start", "rollback", "run_end"]
    assert events[1]["restored_step"] == 1 and events[2]["status"] == "FINISHED"
    assert yaml.safe_load((cfg.run_dir / "config.yaml").read_text())["training"]["run_name"] == "tracked"


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("boom"), "FAILED"),
                                                (EmergencyStop("unsafe"), "KILLED"),
                                                (KeyboardInterrupt(), "KILLED")])
def test_run_status_follows_how_the_block_ended(make_cfg, error, status):
    cfg = make_cfg("ended")
    with pytest.raises(type(error)):
        with RunTracker(cfg, cfg.run_dir) as tracker:
            tracker.log_metrics(1, metrics_at(1))
            raise error
    assert MlflowClient(tracking_uri=tracker.tracking_uri).get_run(tracker.run_id).info.status == status
    last_event = json.loads((cfg.run_dir / "events.jsonl").read_text().splitlines()[-1])
    assert last_event["status"] == status and last_event["severity"] == "critical"


def test_tracking_disabled_writes_only_local_files(make_cfg):
    cfg = make_cfg("local", "monitoring.tracking.enabled=false")
    (cfg.training.runs_dir / "mlflow.db").unlink()
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        tracker.log_metrics(1, metrics_at(1))
        tracker.log_artifact(cfg.run_dir / "config.yaml")
    assert sorted(p.name for p in cfg.run_dir.iterdir()) == ["config.yaml", "events.jsonl", "metrics.jsonl",
                                                            "report.html"]
    assert tracker.run_id is None


def test_store_failing_mid_run_never_crashes_and_replays_on_recovery(make_cfg):
    cfg = make_cfg("flaky")
    db = cfg.training.runs_dir / "mlflow.db"
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        for step in (1, 2):
            tracker.log_metrics(step, metrics_at(step))
        healthy = db.read_bytes()
        db.write_bytes(b"not a database " * 512)  # the store breaks under the running tracker
        for step in (3, 4, 5):
            tracker.log_metrics(step, metrics_at(step))
            tracker.log_event(step, "alert", "warning", "still training")
        assert tracker.last_error is not None and "database" in tracker.last_error
        assert tracker.pending_steps == 3
        pending = [json.loads(line) for line in (cfg.run_dir / PENDING_FILE).read_text().splitlines()]
        assert [p["step"] for p in pending] == [3, 4, 5]
        db.write_bytes(healthy)  # the store comes back: the next call replays the queue
        tracker.log_metrics(6, metrics_at(6))
        assert tracker.last_error is None and tracker.pending_steps == 0
        assert not (cfg.run_dir / PENDING_FILE).exists()
    assert mlflow_history(tracker, "objective/kl") == pytest.approx({s: 0.1 * s for s in range(1, 7)})
    assert MlflowClient(tracking_uri=tracker.tracking_uri).get_run(tracker.run_id).info.status == "FINISHED"
    assert [step for step, _ in read_metrics(cfg.run_dir)] == [1, 2, 3, 4, 5, 6]


def test_store_down_at_the_end_keeps_the_queue_for_replay(make_cfg):
    cfg = make_cfg("down")
    db = cfg.training.runs_dir / "mlflow.db"
    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        tracker.log_metrics(1, metrics_at(1))
        healthy = db.read_bytes()
        db.write_bytes(b"\0" * 4096)
        for step in (2, 3):
            tracker.log_metrics(step, metrics_at(step))
    state = json.loads((cfg.run_dir / STATE_FILE).read_text())
    assert state["status"] == "FINISHED" and state["run_id"] == tracker.run_id
    assert len((cfg.run_dir / PENDING_FILE).read_text().splitlines()) == 2
    with pytest.raises(ClinicalRLHFError, match="still fails.*tracking_pending.jsonl"):
        replay_pending(cfg.run_dir)
    db.write_bytes(healthy)
    result = CliRunner().invoke(app, ["tracking", "replay", str(cfg.run_dir)])
    assert result.exit_code == 0 and "sent 2 queued steps" in result.output, result.output
    assert not (cfg.run_dir / PENDING_FILE).exists()
    assert mlflow_history(tracker, "objective/kl") == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
    assert MlflowClient(tracking_uri=tracker.tracking_uri).get_run(tracker.run_id).info.status == "FINISHED"


def test_unreachable_server_from_the_start_is_retried_with_backoff(make_cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = make_cfg("offline", f"monitoring.tracking.uri=http://127.0.0.1:{port}",
                   "monitoring.tracking.retry_seconds=60")
    clients: list[CountingClient] = []

    def factory(uri):
        clients.append(CountingClient(uri))
        return clients[-1]

    started = time.monotonic()
    with RunTracker(cfg, cfg.run_dir, client_factory=factory) as tracker:
        tracker.log_params(cfg)
        for step in range(1, 6):
            tracker.log_metrics(step, metrics_at(step))
    assert time.monotonic() - started < 20
    # One attempt at start, none during the 60 s back-off, one forced attempt at exit.
    assert clients[0].calls == ["get_experiment_by_name", "get_experiment_by_name"]
    state = json.loads((cfg.run_dir / STATE_FILE).read_text())
    assert state["run_id"] is None and state["status"] == "FINISHED" and not state["params_logged"]
    assert len((cfg.run_dir / PENDING_FILE).read_text().splitlines()) == 5
    assert len(read_metrics(cfg.run_dir)) == 5


def test_resume_continues_the_same_mlflow_run_and_appends(make_cfg):
    cfg = make_cfg("resumed")
    with RunTracker(cfg, cfg.run_dir) as first:
        first.log_params(cfg)
        first.log_metrics(1, metrics_at(1))
    extended = cfg.model_copy(update={"training": cfg.training.model_copy(update={"num_iterations": 40})})
    with RunTracker(extended, cfg.run_dir, resume=True) as second:
        second.log_params(extended)  # a changed param must not block the resumed run
        second.log_metrics(2, metrics_at(2))
        assert second.last_error is None
    assert second.run_id == first.run_id
    assert mlflow_history(second, "objective/kl") == pytest.approx({1: 0.1, 2: 0.2})
    assert [step for step, _ in read_metrics(cfg.run_dir)] == [1, 2]
    with RunTracker(cfg, cfg.run_dir) as fresh:
        fresh.log_metrics(1, metrics_at(1))
    assert fresh.run_id != first.run_id and len(read_metrics(cfg.run_dir)) == 1


def test_bad_values_and_keys(make_cfg):
    cfg = make_cfg("keys")
    with RunTracker(cfg, cfg.run_dir) as tracker:
        with pytest.raises(ValueError, match="metric 'objective/kl' must be a number"):
            tracker.log_metrics(1, {"objective/kl": "high"})
        tracker.log_metrics(1, {"objective/kl": math.nan, "odd key!": 1.0, "value/loss": 0.5})
    line = json.loads((cfg.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert line["metrics"] == {"objective/kl": None, "odd key!": 1.0, "value/loss": 0.5}
    client = MlflowClient(tracking_uri=tracker.tracking_uri)
    assert set(client.get_run(tracker.run_id).data.metrics) == {"objective/kl", "value/loss"}
    assert math.isnan(client.get_metric_history(tracker.run_id, "objective/kl")[0].value)


def test_tracker_forwards_steps_alerts_and_events_to_prometheus_series(make_cfg):
    from clinical_rlhf.monitoring.alerts import evaluate_rules
    from clinical_rlhf.monitoring.metrics import TrainingMetrics

    cfg = make_cfg("forwarded", "monitoring.tracking.enabled=false")
    metrics = TrainingMetrics(process_collector=False)
    with RunTracker(cfg, cfg.run_dir, metrics=metrics) as tracker:
        tracker.log_metrics(3, {"safety/unsafe_ratio": 0.4, "time/iteration": 2.0})
        tracker.log_alerts(3, evaluate_rules(cfg.monitoring.alerts, {"safety/unsafe_ratio": 0.4}))
        tracker.log_event(3, "emergency_stop", "critical", "stopped")
        tracker.log_event(3, "interrupted", "info", "not a counted kind")
    value = metrics.registry.get_sample_value
    assert value("clinical_rlhf_unsafe_ratio") == 0.4 and value("clinical_rlhf_iteration") == 3
    assert value("clinical_rlhf_phase_duration_seconds_sum", {"phase": "iteration"}) == 2.0
    assert value("clinical_rlhf_alerts_fired_total", {"severity": "critical", "action": "emergency_stop"}) == 1
    assert value("clinical_rlhf_events_total", {"kind": "emergency_stop"}) == 1


def test_checkpoint_is_an_event_with_its_size_and_save_time_and_a_prometheus_sample(make_cfg, tmp_path):
    from clinical_rlhf.monitoring.metrics import TrainingMetrics
    from clinical_rlhf.monitoring.runfiles import read_events

    checkpoint = tmp_path / "iter-000005"
    (checkpoint / "adapter").mkdir(parents=True)
    (checkpoint / "adapter" / "weights.bin").write_bytes(b"x" * 3000)
    (checkpoint / "manifest.json").write_bytes(b"y" * 100)
    cfg = make_cfg("checkpointed", "monitoring.tracking.enabled=false")
    metrics = TrainingMetrics(process_collector=False)
    with RunTracker(cfg, cfg.run_dir, metrics=metrics) as tracker:
        tracker.log_checkpoint(5, checkpoint, "regular", 0.25)
    [event] = [e for e in read_events(cfg.run_dir) if e["kind"] == "checkpoint"]
    assert (event["step"], event["size_bytes"], event["seconds"]) == (5, 3100, 0.25)
    value = metrics.registry.get_sample_value
    assert value("clinical_rlhf_checkpoint_size_bytes") == 3100
    assert value("clinical_rlhf_checkpoint_save_seconds_sum") == 0.25
    assert value("clinical_rlhf_events_total", {"kind": "checkpoint"}) == 1


def test_a_checkpoints_audit_anchor_becomes_mlflow_tags_and_prometheus_series(make_cfg):
    from clinical_rlhf.monitoring.metrics import TrainingMetrics

    cfg = make_cfg("anchored")
    checkpoint = cfg.run_dir / "checkpoints" / "iter-000002"
    checkpoint.mkdir(parents=True)
    head = "ab" * 32
    (checkpoint / "manifest.json").write_text(json.dumps({"iteration": 2, "audit": {"count": 7, "head_hash": head}}))
    metrics = TrainingMetrics(process_collector=False)
    with RunTracker(cfg, cfg.run_dir, metrics=metrics) as tracker:
        tracker.log_checkpoint(2, checkpoint, "regular", 0.1)
        run_id = tracker.run_id
    tags = MlflowClient(tracking_uri=tracker.tracking_uri).get_run(run_id).data.tags
    assert tags["clinical_rlhf.audit_count"] == "7" and tags["clinical_rlhf.audit_head_hash"] == head
    assert metrics.registry.get_sample_value("clinical_rlhf_audit_chain_records") == 7
    assert metrics.registry.get_sample_value("clinical_rlhf_audit_chain_head_info", {"head_hash": head}) == 1
