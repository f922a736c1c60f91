"""Where an evaluation's headline metrics go besides its JSON file.

- Prometheus: the keys go through `TrainingMetrics.update`, the one mapping from metric keys to
  series, so `eval/expert_agreement` sets `clinical_rlhf_expert_agreement_ratio` (other `eval/`
  keys have no series and stay in MLflow).
- Alert rules: the config's `monitoring.alerts` are evaluated on the keys, so a rule such as
  `expert_agreement < 0.8` fires here as it would in the trainer (rules on training metrics are
  skipped: their keys are absent).
- MLflow: logged into the run's own MLflow run (found through its tracking.json) at the
  checkpoint's iteration, next to the training curves. Only metrics are logged: the run's status,
  parameters and local files are left as training wrote them (a `RunTracker` would reopen the run
  and rewrite its status and event log). A store that fails is reported, never fatal: the
  numbers are in evaluation.json anyway.
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
    mlflow_client,
    short_error,
)

log = logging.getLogger(__name__)


@dataclass
class Published:
    alerts: list[FiredAlert] = field(default_factory=list)
    mlflow_run_id: str | None = None
    """The MLflow run the metrics went to; None when the run is not tracked or the store failed."""
    mlflow_error: str | None = None


def publish_metrics(cfg, metrics: dict[str, float], *, run_dir: Path | None, step: int, prometheus=None,
                    client_factory: ClientFactory = mlflow_client) -> Published:
    """Send `metrics` to Prometheus (`prometheus`: a `TrainingMetrics`), the alert rules and the
    MLflow run of `run_dir` when it has one and tracking is enabled."""
    published = Published(alerts=evaluate_rules(cfg.monitoring.alerts, metrics, context=rule_context(cfg), step=step))
    if prometheus is not None:
        prometheus.update(metrics)
    try:
        state = TrackingState.load(run_dir) if run_dir is not None and cfg.monitoring.tracking.enabled else None
    except ClinicalRLHFError as exc:  # a damaged tracking.json: the evaluation's files are still good
        published.mlflow_error = str(exc)
        log.warning("%s", exc)
        return published
    if state is None or state.run_id is None:
        return published
    sendable = {key: value for key, value in metrics.items() if METRIC_KEY.match(key)}
    try:
        MlflowRun(state, artifact_location=None, client_factory=client_factory).log_metrics(
            [(int(step), int(time.time() * 1000), sendable)])
    except Exception as exc:  # noqa: BLE001 - HTTP, SQL and OS errors all mean "store unreachable" here
        published.mlflow_error = short_error(exc)
        log.warning("evaluation metrics not sent to MLflow at %s (%s); they are in evaluation.json",
                    state.uri, published.mlflow_error)
    else:
        published.mlflow_run_id = state.run_id
    return published
