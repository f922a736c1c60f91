"""`RunTracker`: the run's metrics, events, parameters and artifacts, in MLflow and on disk.

    with RunTracker(cfg, cfg.run_dir) as tracker:
        tracker.log_params(cfg)
        for step in ...:
            tracker.log_metrics(step, {"objective/kl": kl, "safety/unsafe_ratio": unsafe, ...})
            tracker.log_event(step, "rollback", "warning", "unsafe ratio rose", restored=12)
        tracker.log_artifact(report_path)

Local files are always written (metrics.jsonl, events.jsonl, config.yaml; see runfiles.py), so
the report and any notebook work without MLflow. `monitoring.report_to` picks the trackers:
MLflow (one batched call per iteration, in one store shared by every run under
`training.runs_dir`, one experiment per config name) and/or TensorBoard (tensorboard_sink.py).
If the store fails (server down, database locked or corrupt), training goes on: the metrics are
queued in tracking_pending.jsonl, the store is retried after `monitoring.tracking.retry_seconds`
(doubling up to 8x while it keeps failing), and the queue is replayed as soon as it answers;
what is still queued at the end stays on disk for `clinical-rlhf tracking replay`.

MLflow gets the resolved config as params and as config.yaml, provenance tags (`set_tags`:
git commit and dirty state, base-model fingerprint, data hashes; provenance.py) and, on exit,
the held-out evaluation before and after training as `heldout/before/*` and `heldout/after/*`
metrics with evaluation.json, report.html, the audit log, and a tag naming the final
checkpoint (`clinical_rlhf.final_checkpoint`: the adapter stays in the run directory rather
than being copied into the store). The MLflow run ends as FINISHED (block completed), KILLED
(KeyboardInterrupt, or an EmergencyStop raised by the safety rules) or FAILED (any other
exception); the exception itself always propagates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from clinical_rlhf.config import Config
from clinical_rlhf.errors import EmergencyStop
from clinical_rlhf.monitoring.alerts import FiredAlert
from clinical_rlhf.monitoring.metrics import EVENT_KINDS, TrainingMetrics
from clinical_rlhf.monitoring.mlflow_sink import (
    METRIC_KEY, ClientFactory, MlflowRun, PendingQueue, TrackingState, default_artifact_location,
    default_tracking_uri, flatten_params, mlflow_client, short_error,
)
from clinical_rlhf.monitoring.report import write_report
from clinical_rlhf.monitoring.runfiles import (
    AUDIT_FILE, CONFIG_FILE, EVALUATION_FILE, EVENTS_FILE, METRICS_FILE, append_jsonl, audit_anchor_of,
    evaluation_metrics, last_checkpoint, utc_now_iso,
)
from clinical_rlhf.monitoring.tensorboard_sink import TensorBoardSink

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 8
FINAL_CHECKPOINT_TAG = "clinical_rlhf.final_checkpoint"


def end_status(exc_type: type[BaseException] | None) -> str:
    """MLflow run status for how the tracked block ended."""
    if exc_type is None:
        return "FINISHED"
    if issubclass(exc_type, (KeyboardInterrupt, EmergencyStop)):
        return "KILLED"
    return "FAILED"


class RunTracker:
    def __init__(self, cfg: Config, run_dir: Path, *, resume: bool = False,
                 metrics: TrainingMetrics | None = None, write_report: bool = True,
                 client_factory: ClientFactory = mlflow_client) -> None:
        """`resume=True` appends to the run's files and continues its MLflow run; otherwise the
        local files start empty and a new MLflow run is created (older runs stay in the store).
        With `metrics`, every logged step, alert and event also updates those Prometheus series,
        so the exporter sees exactly what was logged, the emergency-stop iteration included.
        `write_report`: on exit, write report.html and log it and audit.jsonl as artifacts."""
        self.cfg = cfg
        self.metrics = metrics
        self.write_report = write_report
        self.run_dir = Path(run_dir)
        self.settings = cfg.monitoring.tracking
        self.resume = resume
        self.enabled = cfg.monitoring.mlflow_enabled
        self._runs_dir = self.run_dir.parent  # the store is shared by the runs next to this one
        uri = self.settings.uri or default_tracking_uri(self._runs_dir)
        self._default_store = self.settings.uri is None
        self.state = TrackingState(uri=uri, experiment=cfg.experiment_name, run_name=self.run_dir.name)
        self._tensorboard: TensorBoardSink | None = None
        self._client_factory = client_factory
        self._sink: MlflowRun | None = None
        self._queue = PendingQueue(self.run_dir)
        self._params: dict[str, str] | None = None
        self._metrics_file: TextIO | None = None
        self._events_file: TextIO | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: str | None = None
        """The last tracking-store error, or None while MLflow is reachable."""
        self.status: str | None = None
        self.last_step = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RunTracker:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        mode = "a" if self.resume else "w"
        self._metrics_file = (self.run_dir / METRICS_FILE).open(mode, encoding="utf-8")
        self._events_file = (self.run_dir / EVENTS_FILE).open(mode, encoding="utf-8")
        if self.enabled:
            self._open_mlflow()
        if "tensorboard" in self.cfg.monitoring.report_to:
            self._tensorboard = TensorBoardSink(self.run_dir)
        self.log_event(0, "run_start", "info", f"run {self.cfg.training.run_name} started",
                       tracking_uri=self.state.uri if self.enabled else None)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.status = end_status(exc_type)
        try:
            details: dict[str, Any] = {"status": self.status}
            if exc is not None:
                details["error"] = f"{type(exc).__name__}: {exc}"
            severity = "info" if self.status == "FINISHED" else "critical"
            self.log_event(self.last_step, "run_end", severity, f"run ended: {self.status}", **details)
            if self.write_report:
                self._final_artifacts()
            if self.enabled:
                self._close_mlflow()
        finally:
            for handle in (self._metrics_file, self._events_file):
                if handle is not None:
                    handle.close()
            if self._tensorboard is not None:
                self._tensorboard.close()
        return False

    def _final_artifacts(self) -> None:
        """report.html for the finished run, then it, evaluation.json and the audit log into
        MLflow, the before/after evaluation as metrics and the final checkpoint as a tag; a
        report that cannot be rendered is a warning, never a second error on the way out."""
        self._log_evaluation()
        checkpoint = last_checkpoint(self.run_dir)
        if checkpoint is not None:
            self.set_tags({FINAL_CHECKPOINT_TAG: checkpoint})
        try:
            report = write_report(self.run_dir)
        except Exception as exc:  # the run's own files are whatever the crash left
            log.warning("run report not written: %s", short_error(exc))
        else:
            self.log_artifact(report)
        for name in (EVALUATION_FILE, AUDIT_FILE):
            if (self.run_dir / name).exists():
                self.log_artifact(self.run_dir / name)

    def _log_evaluation(self) -> None:
        """evaluation.json's before and after as `heldout/before/*`, `heldout/after/*` metrics
        (`after` at the last step, so the UI's run table shows both)."""
        try:
            metrics = evaluation_metrics(self.run_dir)
        except Exception as exc:  # a damaged evaluation.json must not hide how the run ended
            log.warning("held-out evaluation not tracked: %s", short_error(exc))
            return
        for which, step in (("before", 0), ("after", self.last_step)):
            values = {key: value for key, value in metrics.items() if key.startswith(f"heldout/{which}/")}
            if values:
                self._send_metrics(step, values)

    def _open_mlflow(self) -> None:
        if self.resume:
            previous = TrackingState.load(self.run_dir)
            if previous is not None and previous.uri == self.state.uri:
                self.state = previous
                self.state.status = None
            self._queue.load()
        else:
            self._queue.path.unlink(missing_ok=True)
        artifacts = default_artifact_location(self._runs_dir) if self._default_store else None
        self._sink = MlflowRun(self.state, artifact_location=artifacts,
                               client_factory=self._client_factory)
        resumed = self.state.run_id is not None
        self._attempt(lambda sink: sink.set_running() if resumed else sink.ensure(self._tags()))
        self.state.save(self.run_dir)

    def _close_mlflow(self) -> None:
        self.state.status = self.status  # kept in tracking.json until MLflow has it
        self._attempt(lambda sink: sink.terminate(self.status), force=True)
        if self.last_error is None:
            self.state.status = None
        else:
            log.warning("MLflow run not closed (%s); %d steps wait in %s: send them with "
                        "`clinical-rlhf tracking replay %s`", self.last_error,
                        len(self._queue.items), self._queue.path, self.run_dir)
        self.state.save(self.run_dir)

    def _tags(self) -> dict[str, str]:
        tags = {"clinical_rlhf.run_dir": str(self.run_dir.resolve()), "clinical_rlhf.model": self.cfg.model.name,
                "clinical_rlhf.algorithm": self.cfg.training.algorithm}
        if self.cfg.source is not None:
            tags["clinical_rlhf.config_file"] = str(self.cfg.source)
        return tags

    # ------------------------------------------------------------------ public API

    @property
    def run_id(self) -> str | None:
        return self.state.run_id

    @property
    def tracking_uri(self) -> str:
        return self.state.uri

    @property
    def pending_steps(self) -> int:
        """Iterations logged locally but not yet in MLflow."""
        return len(self._queue.items)

    def log_params(self, cfg: Config) -> None:
        """The resolved config: flattened to MLflow params, and as config.yaml in the run dir.
        A resumed MLflow run keeps the params it has (MLflow refuses to change a param's value,
        and a resumed config may differ, e.g. in num_iterations); config.yaml is rewritten."""
        (self.run_dir / CONFIG_FILE).write_text(cfg.to_yaml(), encoding="utf-8")
        if self._tensorboard is not None:
            self._tensorboard.log_text("config", cfg.to_yaml())
        if self.enabled and not self.state.params_logged:
            self._params = flatten_params(cfg.model_dump(mode="json"))
            self._attempt(lambda sink: None)
            self.log_artifact(self.run_dir / CONFIG_FILE)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags on the MLflow run (provenance, final checkpoint); queued in tracking.json while
        the store is unreachable."""
        if not self.enabled or not tags:
            return
        self.state.pending_tags.update({key: str(value) for key, value in tags.items()})
        self._attempt(lambda sink: None)
        self.state.save(self.run_dir)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """One iteration's metrics: a line in metrics.jsonl, then one batched MLflow call."""
        values: dict[str, float] = {}
        for key, value in metrics.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"metric {key!r} must be a number, got {value!r}") from None
        self.last_step = step
        self._write(self._metrics_file, {"step": int(step), "time": utc_now_iso(), "metrics": values})
        if self.metrics is not None:
            self.metrics.update(values, step=int(step))
        self._send_metrics(int(step), values)

    def _send_metrics(self, step: int, values: dict[str, float]) -> None:
        """To the trackers in `report_to` (metrics.jsonl is the caller's)."""
        if self._tensorboard is not None:
            self._tensorboard.log_metrics(step, values)
        if not self.enabled:
            return
        sendable = {key: value for key, value in values.items() if METRIC_KEY.match(key)}
        if len(sendable) < len(values):
            log.warning("metric keys %s are not valid MLflow keys; they are kept in metrics.jsonl only",
                        sorted(set(values) - set(sendable)))
        self._queue.add(step, int(time.time() * 1000), sendable)
        self._attempt(lambda sink: None)

    def log_event(self, step: int, kind: str, severity: str, message: str, **details: Any) -> None:
        """An alert, rollback, emergency stop, checkpoint, ...: a line in events.jsonl."""
        record = {"step": int(step), "time": utc_now_iso(), "kind": kind, "severity": severity,
                  "message": message, **details}
        self._write(self._events_file, record)
        if self.metrics is not None and kind in EVENT_KINDS:
            self.metrics.record_event(kind)

    def log_checkpoint(self, step: int, path: Path, kind: str, seconds: float) -> None:
        """A checkpoint was written: an event with its size and save time, and the Prometheus
        checkpoint-size gauge and save-seconds histogram (which also count the event)."""
        size_bytes = sum(item.stat().st_size for item in Path(path).rglob("*") if item.is_file())
        self._write(self._events_file, {
            "step": int(step), "time": utc_now_iso(), "kind": "checkpoint", "severity": "info",
            "message": f"{kind} checkpoint {Path(path).name} ({size_bytes / 2**20:.1f} MiB, {seconds:.2f} s)",
            "path": str(path), "checkpoint_kind": kind, "size_bytes": size_bytes, "seconds": seconds})
        if self.metrics is not None:
            self.metrics.observe_checkpoint(size_bytes, seconds)
        anchor = audit_anchor_of(path)  # the audit chain's head at this save: an external copy
        if anchor is not None and self.metrics is not None:
            self.metrics.audit_anchor.set(anchor["count"], anchor["head_hash"])

        def tag(sink: MlflowRun) -> None:
            for name in ("count", "head_hash"):
                sink.client.set_tag(sink.ensure(), f"clinical_rlhf.audit_{name}", str(anchor[name]))

        if anchor is not None and self.enabled:
            self._attempt(tag)

    def log_alerts(self, step: int, fired: Iterable[FiredAlert]) -> None:
        """One `alert` event per fired rule (rule, action, observed value, threshold, ...)."""
        fired = list(fired)
        for alert in fired:
            details = {k: v for k, v in alert.to_dict().items() if k not in ("step", "severity")}
            self.log_event(step, "alert", alert.severity, alert.message, **details)
        if self.metrics is not None:
            self.metrics.record_alerts(fired)

    def log_artifact(self, path: Path) -> None:
        """A file or directory (final adapter, report, audit log) into the MLflow run."""
        path = Path(path).resolve()
        if not self.enabled:
            return
        if str(path) not in self.state.pending_artifacts:
            self.state.pending_artifacts.append(str(path))
        self._attempt(lambda sink: None)
        self.state.save(self.run_dir)

    # ------------------------------------------------------------------ internals

    def _write(self, handle: TextIO | None, record: dict[str, Any]) -> None:
        if handle is None:
            raise RuntimeError("RunTracker is used outside its `with` block")
        append_jsonl(handle, record)

    def _attempt(self, operation: Any, *, force: bool = False) -> None:
        """Run `operation(sink)` after flushing everything owed to MLflow, unless the store is
        in its back-off period. Any store error is recorded, never raised."""
        if self._sink is None or (not force and self.last_error is not None
                                  and time.monotonic() < self._retry_at):
            if self.last_error is not None:
                self._queue.persist()
            return
        try:
            sink = self._sink
            sink.ensure(self._tags())
            if self._params is not None and not self.state.params_logged:
                sink.log_params(self._params)
            sent = self._queue.send(sink)
            sink.send_pending_tags()
            for artifact in list(self.state.pending_artifacts):
                if Path(artifact).exists():
                    sink.log_artifact(Path(artifact))
                self.state.pending_artifacts.remove(artifact)
            operation(sink)
        except Exception as exc:  # HTTP, SQL and OS errors all mean "store unreachable" here
            self._on_failure(exc)
            return
        if self.last_error is not None:
            log.warning("MLflow tracking store %s answers again; sent %d queued steps",
                        self.state.uri, sent)
            self.state.save(self.run_dir)
        self.last_error = None
        self._failures = 0

    def _on_failure(self, exc: Exception) -> None:
        first = self.last_error is None
        self.last_error = short_error(exc)
        self._failures += 1
        factor = min(2 ** (self._failures - 1), MAX_BACKOFF_FACTOR)
        self._retry_at = time.monotonic() + self.settings.retry_seconds * factor
        self._queue.persist()
        self.state.save(self.run_dir)
        if first:
            log.warning("MLflow tracking store %s failed (%s); metrics continue in %s and are "
                        "queued in %s for replay", self.state.uri, self.last_error,
                        self.run_dir / METRICS_FILE, self._queue.path)
