"""Prometheus metrics of a training run (and, through the same registry, of the server).

Three levels, as in the system analysis:

- business: unsafe (vetoed) answer ratio, guideline adherence, expert agreement when an
  evaluation provides it, reward and safety-score drift (PSI, KS, CUSUM, outliers);
- model: KL to the reference and to the rollout policy, KL coefficient beta, policy and value
  loss, gradient norm, learning rate, entropy, clip fraction, Lagrange multiplier;
- system: process RSS and CUDA memory with the pressure level, generation latency and phase
  durations as histograms (p50/p95/p99 via `histogram_quantile`), throughput, checkpoint size
  and save time, plus the standard `process_*` collector.

Every name is `clinical_rlhf_<what>_<unit>`; label values come from the fixed sets below and
never from data (no prompt, request or patient id). `KEY_SERIES` maps the trainer's namespaced
metric keys to series; keys not in it are tracked by MLflow only. Each `TrainingMetrics` owns a
`CollectorRegistry`, so tests and the server can hold several without clashes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.exposition import make_asgi_app, start_http_server

log = logging.getLogger(__name__)

NAMESPACE = "clinical_rlhf"

REWARD_COMPONENTS = ("total", "safety", "guidelines", "uncertainty", "coherence", "learned")
DRIFT_SIGNALS = ("reward", "safety")
PHASES = ("generation", "rollout", "reward", "update", "iteration")
"""`time/<phase>` and `time/<phase>_seconds` keys are observed into `phase_duration_seconds{phase}`."""
SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("emergency_stop", "rollback", "early_stop_epoch", "log_and_notify")
EVENT_KINDS = ("rollback", "emergency_stop", "early_stop_epoch", "checkpoint", "micro_batch_shrink")

GENERATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds per generate call: a served 7B answer takes ~0.1-10 s, a training batch up to minutes."""
PHASE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
CHECKPOINT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0)

# name -> (help, label names). Gauges set from `update`.
_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "unsafe_ratio": ("Share of the iteration's answers vetoed by the safety guard.", ()),
    "escalation_ratio": ("Share of the iteration's answers escalated to a clinician.", ()),
    "rejection_ratio": ("Share of the iteration's answers rejected by the safety guard.", ()),
    "hallucination_ratio": ("Share of the iteration's answers with a hallucination flag.", ()),
    "guideline_adherence_ratio": ("Mean guideline-adherence score of the iteration's answers.", ()),
    "expert_agreement_ratio": ("Agreement of the reward with expert labels (when evaluated).", ()),
    "reward": ("Mean reward of the iteration, total and per component.", ("component",)),
    "drift_psi": ("Population stability index of the iteration against the reference.", ("signal",)),
    "drift_ks_statistic": ("Two-sample Kolmogorov-Smirnov statistic against the reference.", ("signal",)),
    "drift_ks_pvalue": ("p-value of the two-sample KS test against the reference.", ("signal",)),
    "drift_cusum": ("Two-sided CUSUM statistic in reference standard deviations.", ("signal",)),
    "drift_outlier_ratio": ("Share of the iteration outside the reference's Tukey fences.", ("signal",)),
    "drift_detected": ("1 while a drift test reports a shift, else 0.", ("signal", "test")),
    "kl_divergence_nats": ("KL divergence of the policy to the reference or rollout policy.", ("against",)),
    "kl_coefficient": ("KL penalty coefficient beta.", ()),
    "loss": ("PPO loss of the last update.", ("kind",)),
    "gradient_norm": ("Global gradient norm before clipping.", ()),
    "learning_rate": ("Current optimizer learning rate.", ()),
    "entropy_nats": ("Mean per-token policy entropy.", ()),
    "policy_clip_ratio": ("Share of tokens whose policy ratio was clipped.", ()),
    "lagrange_multiplier": ("Lagrange multiplier on the unsafe-answer cost.", ()),
    "constraint_cost": ("Mean safety cost of the iteration (the Lagrangian constraint's left side).", ()),
    "response_length_tokens": ("Mean answer length of the iteration.", ()),
    "missing_eos_ratio": ("Share of answers cut at max_new_tokens without an end token.", ()),
    "micro_batch_size": ("Samples per forward/backward pass (shrinks under memory pressure).", ()),
    "iteration": ("Last completed training iteration.", ()),
    "throughput_samples_per_second": ("Rollout samples per second of the last iteration.", ()),
    "throughput_tokens_per_second": ("Generated tokens per second of the last iteration.", ()),
    "memory_bytes": ("Memory in use or available, by device and kind.", ("device", "kind")),
    "memory_used_ratio": ("Share of the device's memory in use.", ("device",)),
    "memory_pressure_level": ("Memory pressure: 0 ok, 1 warning, 2 critical.", ()),
    "checkpoint_size_bytes": ("Size of the last checkpoint written.", ()),
}


def _key_table() -> dict[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]]:
    table: dict[str, list[tuple[str, dict[str, str]]]] = {
        "safety/unsafe_ratio": [("unsafe_ratio", {})],
        "safety/escalate_ratio": [("escalation_ratio", {})],
        "safety/reject_ratio": [("rejection_ratio", {})],
        "reward/hallucination_rate": [("hallucination_ratio", {})],
        "eval/expert_agreement": [("expert_agreement_ratio", {})],
        "objective/kl": [("kl_divergence_nats", {"against": "reference"})],
        "policy/approx_kl": [("kl_divergence_nats", {"against": "rollout"})],
        "objective/kl_coef": [("kl_coefficient", {})],
        "policy/loss": [("loss", {"kind": "policy"})],
        "value/loss": [("loss", {"kind": "value"})],
        "policy/grad_norm": [("gradient_norm", {})],
        "policy/lr": [("learning_rate", {})],
        "policy/entropy": [("entropy_nats", {})],
        "policy/clipfrac": [("policy_clip_ratio", {})],
        "lagrange/multiplier": [("lagrange_multiplier", {})],
        "lagrange/cost": [("constraint_cost", {})],
        "rollout/response_length": [("response_length_tokens", {})],
        "rollout/missing_eos_ratio": [("missing_eos_ratio", {})],
        "system/micro_batch_size": [("micro_batch_size", {})],
        "throughput/samples_per_second": [("throughput_samples_per_second", {})],
        "time/samples_per_second": [("throughput_samples_per_second", {})],
        "throughput/tokens_per_second": [("throughput_tokens_per_second", {})],
        "memory/rss_bytes": [("memory_bytes", {"device": "host", "kind": "rss"})],
        "memory/host_used_bytes": [("memory_bytes", {"device": "host", "kind": "used"})],
        "memory/host_total_bytes": [("memory_bytes", {"device": "host", "kind": "total"})],
        "memory/cuda_allocated_bytes": [("memory_bytes", {"device": "cuda", "kind": "allocated"})],
        "memory/cuda_reserved_bytes": [("memory_bytes", {"device": "cuda", "kind": "reserved"})],
        "memory/cuda_used_bytes": [("memory_bytes", {"device": "cuda", "kind": "used"})],
        "memory/cuda_total_bytes": [("memory_bytes", {"device": "cuda", "kind": "total"})],
        "memory/host_used_fraction": [("memory_used_ratio", {"device": "host"})],
        "memory/cuda_used_fraction": [("memory_used_ratio", {"device": "cuda"})],
        "memory/pressure_level": [("memory_pressure_level", {})],
    }
    for component in REWARD_COMPONENTS:
        table[f"reward/{component}/mean"] = [("reward", {"component": component})]
    table["reward/guidelines/mean"].append(("guideline_adherence_ratio", {}))
    for signal in DRIFT_SIGNALS:
        for stat, metric in (("psi", "drift_psi"), ("ks_statistic", "drift_ks_statistic"),
                             ("ks_pvalue", "drift_ks_pvalue"), ("cusum", "drift_cusum"),
                             ("outlier_fraction", "drift_outlier_ratio")):
            table[f"drift/{signal}/{stat}"] = [(metric, {"signal": signal})]
        for test in ("ks", "cusum"):
            table[f"drift/{signal}/{test}_drift"] = [("drift_detected", {"signal": signal, "test": test})]
    return {key: tuple((name, tuple(labels.items())) for name, labels in series)
            for key, series in table.items()}


KEY_SERIES = _key_table()
"""Namespaced metric key -> the gauge series it sets (metric name without namespace, labels)."""


def selector(key: str) -> str:
    """PromQL selector of the (first) series a namespaced key sets, e.g.
    `drift/reward/psi` -> `clinical_rlhf_drift_psi{signal="reward"}`. KeyError if unmapped."""
    name, labels = KEY_SERIES[key][0]
    inside = ",".join(f'{label}="{value}"' for label, value in labels)
    return f"{NAMESPACE}_{name}{{{inside}}}" if inside else f"{NAMESPACE}_{name}"


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running exporter: scrape `url`."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


class AuditAnchorSeries:
    """The audit chain's anchor as Prometheus series: `<prefix>_audit_chain_records` (record count) and
    `<prefix>_audit_chain_head_info{head_hash=...}` (an Info series: one sample whose label is replaced
    at every update, so the head hash never piles up label values). A scrape history of these is
    an external copy of the chain's head (`clinical-rlhf audit verify --expect-head/--expect-count`)."""

    def __init__(self, registry: CollectorRegistry, prefix: str = NAMESPACE) -> None:
        self.records = Gauge(f"{prefix}_audit_chain_records",
                             "Records in the audit log's hash chain at the last anchor.", registry=registry)
        self.head = Info(f"{prefix}_audit_chain_head", "Hash of the audit log's last record at the last anchor.",
                         registry=registry)

    def set(self, count: int, head_hash: str) -> None:
        self.records.set(count)
        self.head.info({"head_hash": head_hash})


class TrainingMetrics:
    """The run's Prometheus series in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_collector: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        if process_collector:
            ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu, fds
        self._gauges: dict[str, Gauge] = {}  # registered on first use (see `gauge`)
        self.generation_latency = Histogram(
            f"{NAMESPACE}_generation_latency_seconds", "Wall time of one generate call.",
            buckets=GENERATION_BUCKETS, registry=self.registry)
        self.phase_duration = Histogram(
            f"{NAMESPACE}_phase_duration_seconds", "Wall time of a phase of one training iteration.",
            ("phase",), buckets=PHASE_BUCKETS, registry=self.registry)
        self.checkpoint_save = Histogram(
            f"{NAMESPACE}_checkpoint_save_seconds", "Wall time to write one checkpoint.",
            buckets=CHECKPOINT_BUCKETS, registry=self.registry)
        self.alerts_fired = Counter(
            f"{NAMESPACE}_alerts_fired_total", "Alert rules that fired in the trainer.",
            ("severity", "action"), registry=self.registry)
        self.events = Counter(
            f"{NAMESPACE}_events_total", "Training events (rollbacks, stops, checkpoints, ...).",
            ("kind",), registry=self.registry)
        self.audit_anchor = AuditAnchorSeries(self.registry)
        self.unmapped: set[str] = set()
        """Keys passed to `update` that have no Prometheus series (tracked by MLflow only)."""
        self._lock = threading.RLock()  # the server thread may read while the trainer writes

    def gauge(self, name: str, **labels: str) -> Gauge:
        """The gauge series `clinical_rlhf_<name>{labels}`. A gauge is registered the first time
        it is asked for, so a series that was never observed (expert agreement without an
        evaluation, CUDA memory on CPU) is absent from /metrics rather than a misleading 0."""
        with self._lock:
            gauge = self._gauges.get(name)
            if gauge is None:
                doc, label_names = _GAUGES[name]
                gauge = Gauge(f"{NAMESPACE}_{name}", doc, label_names, registry=self.registry)
                self._gauges[name] = gauge
        return gauge.labels(**labels) if labels else gauge

    def update(self, step_metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Set the series of every mapped key; `time/<phase>[_seconds]` are observed as durations."""
        with self._lock:
            if step is not None:
                self.gauge("iteration").set(step)
            for key, value in step_metrics.items():
                series = KEY_SERIES.get(key)
                if series is not None:
                    for name, labels in series:
                        self.gauge(name, **dict(labels)).set(float(value))
                    continue
                phase = key.removeprefix("time/").removesuffix("_seconds")
                if key.startswith("time/") and phase in PHASES and math.isfinite(float(value)):
                    self.phase_duration.labels(phase=phase).observe(float(value))
                else:
                    self.unmapped.add(key)

    def observe_generation_latency(self, seconds: float) -> None:
        self.generation_latency.observe(seconds)

    def observe_checkpoint(self, size_bytes: int, seconds: float) -> None:
        self.gauge("checkpoint_size_bytes").set(size_bytes)
        self.checkpoint_save.observe(seconds)
        self.events.labels(kind="checkpoint").inc()

    def record_alerts(self, fired: Iterable[object]) -> None:
        """Count fired alerts (`FiredAlert`s) by severity and action."""
        for alert in fired:
            self.alerts_fired.labels(severity=alert.severity, action=alert.action).inc()

    def record_event(self, kind: str) -> None:
        if kind not in EVENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
        self.events.labels(kind=kind).inc()

    def asgi_app(self):
        """An ASGI app serving this registry, to mount at `/metrics` (e.g. on FastAPI)."""
        return make_asgi_app(registry=self.registry)

    @contextmanager
    def start_metrics_server(self, host: str = "127.0.0.1", port: int = 0, *,
                             linger_seconds: float = 0.0) -> Iterator[MetricsServer]:
        """Serve `/metrics` on host:port for the duration of the block; port 0 picks a free port
        (read it from the yielded `MetricsServer.port`). `linger_seconds` keeps serving that long
        after the block ends (also on an exception), so that Prometheus scrapes the final values,
        e.g. those of an emergency stop, before the process exits."""
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if linger_seconds < 0:
            raise ValueError(f"linger_seconds must be >= 0, got {linger_seconds}")
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        try:
            yield MetricsServer(host=host, port=int(server.server_address[1]))
        finally:
            if linger_seconds > 0:  # say why the process has not exited yet
                log.info("keeping %s:%d/metrics up %g s more for a final Prometheus scrape "
                         "(monitoring.prometheus.linger_seconds)", host, server.server_address[1], linger_seconds)
            time.sleep(linger_seconds)
            server.shutdown()
            server.server_close()
            thread.join(timeout=5.0)
