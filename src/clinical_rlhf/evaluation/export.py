"""Where an evaluation's headline metrics go besides its JSON file.

- Prometheus: the keys go through `TrainingMetrics.update`, the one mapping from metric keys to
  series, so `eval/expert_agreement` sets `clinical_rlhf_expert_agreement_ratio` (other `eval/`
  keys have no series and stay in MLflow).
- Alert rules: the config's `monitoring.alerts` are evaluated on the keys, so a rule such as
  `expert_agreement < 0.8` fires here as it would in the trainer (rules on training metrics are
  skipped: their keys are absent).
- MLflow: an evaluation is an MLflow run of its own in the shared store (the evaluated run's
  store and experiment when it has one, else the config's), named after what was evaluated, with
  the metrics at step 0, its output files as artifacts and, when the checkpoint belongs to a
  tracked training run, that run as its parent (`mlflow.parentRunId`: the UI nests it under the
  training run). The training run itself is never written to: its curves, parameters and status
  stay as training left them. A store that fails is reported, never fatal: the numbers are in
  the evaluation's JSON file anyway.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from clinical_rlhf.errors import ClinicalRLHFError
from clinical_rlhf.monitoring.alerts import FiredAlert, evaluate_rules, rule_context
from clinical_rlhf.monitoring.mlflow_sink import (
    METRIC_KEY,
    ClientFactory,
    MlflowRun,
    TrackingState,
    default_artifact_location,
    default_tracking_uri,
    mlflow_client,
    short_error,
)

log = logging.getLogger(__name__)


@dataclass
class Published:
    alerts: list[FiredAlert] = field(default_factory=list)
    mlflow_run_id: str | None = None
    """The evaluation's own MLflow run; None when MLflow is off or the store failed."""
    mlflow_error: str | None = None
    mlflow_uri: str | None = None


def publish_metrics(cfg, metrics: dict[str, float], *, run_dir: Path | None, step: int, prometheus=None,
                    run_name: str = "evaluation", artifacts: tuple[Path, ...] = (),
                    tags: dict[str, str] | None = None, client_factory: ClientFactory = mlflow_client) -> Published:
    """Send `metrics` to Prometheus (`prometheus`: a `TrainingMetrics`), the alert rules and a new
    MLflow run `run_name` (child of `run_dir`'s training run when it has one) when MLflow is on.
    `step` is the evaluated checkpoint's iteration, kept as a tag (the metrics sit at step 0)."""
    published = Published(alerts=evaluate_rules(cfg.monitoring.alerts, metrics, context=rule_context(cfg), step=step))
    if prometheus is not None:
        prometheus.update(metrics)
    if not cfg.monitoring.mlflow_enabled:
        return published
    try:
        parent = TrackingState.load(run_dir) if run_dir is not None else None
    except ClinicalRLHFError as exc:  # a damaged tracking.json: evaluate unparented rather than fail
        log.warning("%s", exc)
        parent = None
    uri = parent.uri if parent is not None else (cfg.monitoring.tracking.uri
                                                 or default_tracking_uri(cfg.training.runs_dir))
    experiment = parent.experiment if parent is not None else cfg.experiment_name
    state = TrackingState(uri=uri, experiment=experiment, run_name=run_name)
    run_tags = {"clinical_rlhf.kind": "evaluation", "clinical_rlhf.evaluated_iteration": str(step), **(tags or {})}
    if parent is not None and parent.run_id is not None:
        run_tags["mlflow.parentRunId"] = parent.run_id
    sendable = {key: value for key, value in metrics.items() if METRIC_KEY.match(key)}
    default_store = parent is None and cfg.monitoring.tracking.uri is None
    sink = MlflowRun(state, artifact_location=default_artifact_location(cfg.training.runs_dir) if default_store else None,
                     client_factory=client_factory)
    try:
        sink.ensure(run_tags)
        sink.log_metrics([(0, int(time.time() * 1000), sendable)])
        for artifact in artifacts:
            if Path(artifact).exists():
                sink.log_artifact(Path(artifact))
        sink.terminate("FINISHED")
    except Exception as exc:  # noqa: BLE001 - HTTP, SQL and OS errors all mean "store unreachable" here
        published.mlflow_error = short_error(exc)
        log.warning("evaluation metrics not sent to MLflow at %s (%s); they are in the evaluation's JSON file",
                    state.uri, published.mlflow_error)
    else:
        published.mlflow_run_id = state.run_id
        published.mlflow_uri = state.uri
    return published
