"""Observability of a run: drift detectors, alert rules, MLflow tracking with a local fallback,
Prometheus metrics, memory pressure and the HTML run report. See docs/monitoring.md.

The trainer's loop, in the order it calls them:

    metrics = TrainingMetrics()
    with metrics.start_metrics_server(host, port, linger_seconds=...), \
            RunTracker(cfg, cfg.run_dir, metrics=metrics) as tracker:
        tracker.log_params(cfg)
        ...
        step_metrics |= drift.update(step, rewards, safety_scores)      # DriftMonitor
        memory.update(); step_metrics |= memory.metrics()                # MemoryMonitor
        tracker.log_metrics(step, step_metrics)      # metrics.jsonl + MLflow + Prometheus series
        fired = evaluate_rules(rules, step_metrics, context=rule_context(cfg), audit=audit, step=step)
        tracker.log_alerts(step, fired)              # events.jsonl + alerts_fired_total
        if strongest_action(fired) == "emergency_stop": raise EmergencyStop(...)
"""

from clinical_rlhf.monitoring.alerts import (
    METRIC_ALIASES, AlertRule, FiredAlert, evaluate_rules, parse_rules, rule_context, strongest_action,
)
from clinical_rlhf.monitoring.drift import CUSUM, PSI, IQROutliers, KSResult, KSTest
from clinical_rlhf.monitoring.drift_monitor import DriftMonitor
from clinical_rlhf.monitoring.memory import MemoryMonitor, MemoryReading, read_memory
from clinical_rlhf.monitoring.metrics import MetricsServer, TrainingMetrics
from clinical_rlhf.monitoring.report import render_report, write_report
from clinical_rlhf.monitoring.tracking import RunTracker

__all__ = [
    "CUSUM", "METRIC_ALIASES", "PSI", "AlertRule", "DriftMonitor", "FiredAlert", "IQROutliers",
    "KSResult", "KSTest", "MemoryMonitor", "MemoryReading", "MetricsServer", "RunTracker",
    "TrainingMetrics", "evaluate_rules", "parse_rules", "read_memory", "render_report",
    "rule_context", "strongest_action", "write_report",
]
