"""The MLflow side of run tracking: one MLflow run, batched calls, and what is still to send.

Everything here may raise; `RunTracker` decides that a failure means "store unreachable" and
keeps going. What could not be sent is kept on disk in the run directory:

    tracking.json            {"uri", "experiment", "run_name", "run_id", "params_logged",
                              "status", "pending_artifacts", "pending_tags"}: enough to find or
                             create the run
    tracking_pending.jsonl   metrics not yet in MLflow, one {"step", "timestamp_ms", "metrics"}
                             per line (a subset of metrics.jsonl, which always has everything)

`replay_pending(run_dir)` (CLI: `clinical-rlhf tracking replay runs/<name>`) sends them later.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.errors import ClinicalRLHFError
from clinical_rlhf.monitoring.runfiles import CONFIG_FILE, json_safe, read_jsonl

STATE_FILE = "tracking.json"
PENDING_FILE = "tracking_pending.jsonl"
MAX_METRICS_PER_CALL = 1000  # MLflow's log_batch limits
MAX_PARAMS_PER_CALL = 100
MAX_PARAM_LENGTH = 6000
METRIC_KEY = re.compile(r"^(?!.*(?:^|/)\.\.(?:/|$))[\w.\- /]{1,250}$")
"""Keys MLflow accepts (letters, digits, `_ - . / space`, no `..` path part); others are kept in
metrics.jsonl only, so that one bad key cannot block the queue."""

HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
"""Set when unset: MLflow's own defaults (7 retries with backoff, 120 s timeout) would stall
training for minutes each time a remote server is down."""

ClientFactory = Callable[[str], Any]


def short_error(exc: BaseException) -> str:
    """`Type: first line of the message` (store errors can carry whole SQL statements)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")


def default_tracking_uri(runs_dir: Path) -> str:
    """One SQLite store for every run under `runs_dir` (MLflow's file store is deprecated), so
    the MLflow UI compares runs side by side."""
    return f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"


def default_artifact_location(runs_dir: Path) -> str:
    """Artifacts of the default store, next to it: `<runs_dir>/mlartifacts/<experiment id>/<run id>`."""
    return (Path(runs_dir) / "mlartifacts").resolve().as_uri()


def mlflow_client(uri: str) -> Any:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def flatten_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> {"a.b.c": "value"}; lists as JSON, values cut to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(json_safe(value), default=str)
        flat[name] = text[:MAX_PARAM_LENGTH]
    return flat


@dataclass
class TrackingState:
    uri: str
    experiment: str
    run_name: str
    run_id: str | None = None
    params_logged: bool = False
    status: str | None = None
    """Final status still to be set on the MLflow run (None once set, or while running)."""
    pending_artifacts: list[str] = field(default_factory=list)
    pending_tags: dict[str, str] = field(default_factory=dict)
    """Tags set after the run was created (provenance, final checkpoint) not yet in MLflow."""

    def save(self, run_dir: Path) -> None:
        path = Path(run_dir) / STATE_FILE
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        temporary.replace(path)

    @classmethod
    def load(cls, run_dir: Path) -> TrackingState | None:
        path = Path(run_dir) / STATE_FILE
        if not path.exists():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ClinicalRLHFError(f"{path} is not a tracking state file ({exc}); "
                                    f"delete it to start a new MLflow run") from None


class PendingQueue:
    """Metrics waiting for MLflow, mirrored to `tracking_pending.jsonl` as they are queued."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / PENDING_FILE
        self.items: list[tuple[int, int, dict[str, float]]] = []
        self._on_disk = 0

    def load(self) -> None:
        self.items = [(int(r["step"]), int(r["timestamp_ms"]), dict(r["metrics"]))
                      for r in read_jsonl(self.path)]
        self._on_disk = len(self.items)

    def add(self, step: int, timestamp_ms: int, metrics: dict[str, float]) -> None:
        self.items.append((step, timestamp_ms, metrics))

    def persist(self) -> None:
        """Append the items not yet on disk (called while the store is unreachable)."""
        if self._on_disk == len(self.items):
            return
        with self.path.open("a", encoding="utf-8") as handle:
            for step, timestamp_ms, metrics in self.items[self._on_disk:]:
                handle.write(json.dumps({"step": step, "timestamp_ms": timestamp_ms,
                                         "metrics": json_safe(metrics)}) + "\n")
        self._on_disk = len(self.items)

    def drop_sent(self, count: int) -> None:
        """Forget the first `count` items (they reached MLflow); the file keeps mirroring the rest."""
        self.items = self.items[count:]
        if self._on_disk:
            self.path.unlink(missing_ok=True)
            self._on_disk = 0
            self.persist()

    def chunks(self) -> Iterable[list[tuple[int, int, dict[str, float]]]]:
        """Whole steps grouped up to MLflow's per-call metric limit (a larger step goes alone)."""
        chunk: list[tuple[int, int, dict[str, float]]] = []
        size = 0
        for item in self.items:
            if chunk and size + len(item[2]) > MAX_METRICS_PER_CALL:
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += len(item[2])
        if chunk:
            yield chunk

    def send(self, sink: MlflowRun) -> int:
        """Send everything queued, chunk by chunk; returns the steps sent. Raises on failure,
        keeping what was not sent."""
        sent = 0
        for chunk in list(self.chunks()):
            sink.log_metrics(chunk)
            self.drop_sent(len(chunk))
            sent += len(chunk)
        return sent


class MlflowRun:
    """One MLflow run, created on first use; each method is one or a few batched calls."""

    def __init__(self, state: TrackingState, artifact_location: str | None,
                 client_factory: ClientFactory = mlflow_client) -> None:
        self.state = state
        self.artifact_location = artifact_location
        self._client_factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory(self.state.uri)
        return self._client

    def ensure(self, tags: Mapping[str, str] | None = None) -> str:
        """The run id, creating the experiment and run when this state has none."""
        if self.state.run_id is not None:
            return self.state.run_id
        experiment = self.client.get_experiment_by_name(self.state.experiment)
        if experiment is None:
            experiment_id = self.client.create_experiment(
                self.state.experiment, artifact_location=self.artifact_location)
        else:
            experiment_id = experiment.experiment_id
        run = self.client.create_run(experiment_id, run_name=self.state.run_name, tags=dict(tags or {}))
        self.state.run_id = run.info.run_id
        return self.state.run_id

    def log_metrics(self, items: Iterable[tuple[int, int, Mapping[str, float]]]) -> None:
        from mlflow.entities import Metric

        batch: list[Any] = []
        for step, timestamp_ms, metrics in items:
            for key, value in metrics.items():
                number = float("nan") if value is None else float(value)
                batch.append(Metric(key, number, timestamp_ms, step))
                if len(batch) == MAX_METRICS_PER_CALL:
                    self.client.log_batch(self.ensure(), metrics=batch)
                    batch = []
        if batch:
            self.client.log_batch(self.ensure(), metrics=batch)

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.ensure(), params=items[start:start + MAX_PARAMS_PER_CALL])
        self.state.params_logged = True

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.ensure(), str(path), artifact_path=path.name)
        else:
            self.client.log_artifact(self.ensure(), str(path))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(self.ensure(), tags=[RunTag(key, str(value)) for key, value in tags.items()])

    def send_pending_tags(self) -> None:
        self.set_tags(self.state.pending_tags)
        self.state.pending_tags = {}

    def set_running(self) -> None:
        self.client.update_run(self.ensure(), status="RUNNING")

    def terminate(self, status: str) -> None:
        self.client.set_terminated(self.ensure(), status=status)


def replay_pending(run_dir: Path, *, client_factory: ClientFactory = mlflow_client) -> int:
    """Send what a run could not send to MLflow (metrics, params, artifacts, final status).
    Returns the number of metric steps sent; raises ClinicalRLHFError when the store still fails."""
    run_dir = Path(run_dir)
    state = TrackingState.load(run_dir)
    if state is None:
        raise ClinicalRLHFError(f"{run_dir / STATE_FILE} does not exist: this run was not tracked "
                                f"with MLflow (or the directory is not a run directory)")
    queue = PendingQueue(run_dir)
    queue.load()
    sent = 0
    sink = MlflowRun(state, artifact_location=None, client_factory=client_factory)
    try:
        if not state.params_logged and (run_dir / CONFIG_FILE).exists():
            config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
            sink.log_params(flatten_params(config))
        sent = queue.send(sink)
        sink.send_pending_tags()
        for artifact in list(state.pending_artifacts):
            if Path(artifact).exists():
                sink.log_artifact(Path(artifact))
            state.pending_artifacts.remove(artifact)
        if state.status is not None:
            sink.terminate(state.status)
            state.status = None
    except Exception as exc:  # the store's own error types vary (HTTP, SQL, OS)
        raise ClinicalRLHFError(f"tracking store {state.uri} still fails ({short_error(exc)}); "
                                f"the metrics stay in {queue.path}") from None
    finally:
        state.save(run_dir)
    return sent
