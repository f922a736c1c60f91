"""Prometheus series of the server, in a registry of its own (one per app, so tests can run several).

Names follow `monitoring.metrics`: `clinical_rlhf_serve_<what>_<unit>`, and label values come only
from the fixed tuples below, never from a request (no prompt, key, key id or request id).
The training registry (`TrainingMetrics`) is not reused: its gauges would export zeros that read
as training values on a server.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from clinical_rlhf.monitoring.metrics import GENERATION_BUCKETS, NAMESPACE, AuditAnchorSeries

ENDPOINTS = ("chat_completions", "completions", "feedback", "models", "health", "ready", "metrics", "other")
STATUSES = ("200", "400", "401", "404", "405", "413", "422", "429", "500", "502", "503", "504", "other")
STAGES = ("prompt", "answer")
ACTIONS = ("allow", "escalate", "reject")
REASONS = ("red_flag_missing_advice", "red_flag_downplayed", "drug_interaction", "contraindication",
           "dosage", "hallucination", "guard_error", "unsafe_answer")
"""Machine-readable reason codes of a fallback (also the `safety.reason_code` of a response)."""
FEEDBACK_KINDS = ("rating", "correction")

GUARD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
"""Seconds per guard check: ~0.2 ms typical, a long answer a few ms."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

_PATHS = {"/v1/chat/completions": "chat_completions", "/v1/completions": "completions", "/v1/feedback": "feedback",
          "/v1/models": "models", "/health": "health", "/ready": "ready", "/metrics": "metrics"}


def endpoint_label(path: str) -> str:
    return _PATHS.get(path.rstrip("/") or "/", "other")


class ServeMetrics:
    def __init__(self, *, process_collector: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process_collector:
            ProcessCollector(registry=self.registry)
        prefix = f"{NAMESPACE}_serve"
        self.requests = Counter(f"{prefix}_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"), registry=self.registry)
        self.request_duration = Histogram(
            f"{prefix}_request_duration_seconds", "Wall time of a request, body sent included.",
            ("endpoint",), buckets=GENERATION_BUCKETS, registry=self.registry)
        self.generation_latency = Histogram(
            f"{prefix}_generation_latency_seconds", "Wall time of one backend generate call (one batch).",
            buckets=GENERATION_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram(
            f"{prefix}_queue_wait_seconds", "Time a request waited for its batch to start generating.",
            buckets=GENERATION_BUCKETS, registry=self.registry)
        self.guard_latency = Histogram(
            f"{prefix}_guard_latency_seconds", "Wall time of one safety-guard check.",
            ("stage",), buckets=GUARD_BUCKETS, registry=self.registry)
        self.audit_anchor = AuditAnchorSeries(self.registry, prefix)
        self.batch_size = Histogram(f"{prefix}_batch_size", "Requests generated together in one batch.",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.verdicts = Counter(f"{prefix}_guard_verdicts_total", "Guard verdicts by stage and action.",
                                ("stage", "action"), registry=self.registry)
        self.fallbacks = Counter(f"{prefix}_fallbacks_total",
                                 "Answers replaced by the safe fallback, by reason code.",
                                 ("reason",), registry=self.registry)
        self.audit_records = Counter(f"{prefix}_audit_records_total", "Audit records written.",
                                     registry=self.registry)
        self.in_flight = Gauge(f"{prefix}_in_flight_requests", "Requests being answered now.",
                               registry=self.registry)
        self.feedback = Counter(f"{NAMESPACE}_feedback_total",
                                "Clinician feedback recorded on served answers, by kind (a request with a "
                                "rating and a correction counts once in each).", ("kind",), registry=self.registry)
        self.ready = Gauge(f"{prefix}_ready", "1 once the model is loaded and requests are served.",
                           registry=self.registry)
        for endpoint in ENDPOINTS:  # export zeros, so rate() works from the first scrape
            self.request_duration.labels(endpoint=endpoint)
        for stage in STAGES:
            self.guard_latency.labels(stage=stage)
            for action in ACTIONS:
                self.verdicts.labels(stage=stage, action=action)
        for reason in REASONS:
            self.fallbacks.labels(reason=reason)
        for kind in FEEDBACK_KINDS:
            self.feedback.labels(kind=kind)

    def count_request(self, endpoint: str, status: int, seconds: float) -> None:
        label = str(status) if str(status) in STATUSES else "other"
        self.requests.labels(endpoint=endpoint, status=label).inc()
        self.request_duration.labels(endpoint=endpoint).observe(seconds)

    def observe_guard(self, stage: str, action: str, seconds: float) -> None:
        self.guard_latency.labels(stage=stage).observe(seconds)
        self.verdicts.labels(stage=stage, action=action).inc()

    def count_fallback(self, reason: str) -> None:
        self.fallbacks.labels(reason=reason if reason in REASONS else "unsafe_answer").inc()
