"""TrainingMetrics: key mapping, histograms, label sets, and the HTTP exporter."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clinical_rlhf.monitoring.metrics import (
    ACTIONS, DRIFT_SIGNALS, EVENT_KINDS, KEY_SERIES, PHASES, REWARD_COMPONENTS, SEVERITIES,
    TrainingMetrics, selector,
)

ALLOWED_LABEL_VALUES = {
    "component": set(REWARD_COMPONENTS), "signal": set(DRIFT_SIGNALS), "test": {"ks", "cusum"},
    "against": {"reference", "rollout"}, "kind": {"policy", "value", "rss", "used", "total", "allocated",
                                                  "reserved", *EVENT_KINDS},
    "device": {"host", "cuda"}, "phase": set(PHASES), "severity": set(SEVERITIES), "action": set(ACTIONS),
    "le": None,  # histogram buckets
}


def sample_value(metrics: TrainingMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_namespaced_keys_set_their_series():
    metrics = TrainingMetrics(process_collector=False)
    metrics.update({
        "safety/unsafe_ratio": 0.2, "objective/kl": 1.5, "policy/approx_kl": 0.03, "policy/loss": -0.1,
        "value/loss": 0.4, "policy/grad_norm": 0.9, "policy/lr": 1e-5, "lagrange/multiplier": 2.0,
        "reward/total/mean": 0.6, "reward/guidelines/mean": 0.7, "drift/reward/psi": 0.3,
        "drift/safety/ks_drift": 1.0, "memory/rss_bytes": 2.5e9, "something/unmapped": 1.0,
    }, step=12)
    expected = {
        ("clinical_rlhf_unsafe_ratio", ()): 0.2,
        ("clinical_rlhf_kl_divergence_nats", (("against", "reference"),)): 1.5,
        ("clinical_rlhf_kl_divergence_nats", (("against", "rollout"),)): 0.03,
        ("clinical_rlhf_loss", (("kind", "policy"),)): -0.1,
        ("clinical_rlhf_loss", (("kind", "value"),)): 0.4,
        ("clinical_rlhf_gradient_norm", ()): 0.9,
        ("clinical_rlhf_learning_rate", ()): 1e-5,
        ("clinical_rlhf_lagrange_multiplier", ()): 2.0,
        ("clinical_rlhf_reward", (("component", "total"),)): 0.6,
        ("clinical_rlhf_reward", (("component", "guidelines"),)): 0.7,
        ("clinical_rlhf_guideline_adherence_ratio", ()): 0.7,
        ("clinical_rlhf_drift_psi", (("signal", "reward"),)): 0.3,
        ("clinical_rlhf_drift_detected", (("signal", "safety"), ("test", "ks"))): 1.0,
        ("clinical_rlhf_memory_bytes", (("device", "host"), ("kind", "rss"))): 2.5e9,
        ("clinical_rlhf_iteration", ()): 12,
    }
    for (name, labels), value in expected.items():
        assert sample_value(metrics, name, **dict(labels)) == pytest.approx(value), name
    assert metrics.unmapped == {"something/unmapped"}


def test_latency_histograms_give_quantiles_and_checkpoint_counts():
    metrics = TrainingMetrics(process_collector=False)
    for seconds in (0.02, 0.2, 0.2, 3.0):
        metrics.observe_generation_latency(seconds)
    bucket = "clinical_rlhf_generation_latency_seconds_bucket"
    assert sample_value(metrics, bucket, le="0.025") == 1
    assert sample_value(metrics, bucket, le="0.25") == 3
    assert sample_value(metrics, bucket, le="+Inf") == 4
    assert sample_value(metrics, "clinical_rlhf_generation_latency_seconds_sum") == pytest.approx(3.42)
    metrics.update({"time/iteration_seconds": 12.0, "time/generation_seconds": 4.0})
    assert sample_value(metrics, "clinical_rlhf_phase_duration_seconds_count", phase="iteration") == 1
    assert sample_value(metrics, "clinical_rlhf_phase_duration_seconds_sum", phase="generation") == 4.0
    metrics.observe_checkpoint(size_bytes=123_456, seconds=1.5)
    assert sample_value(metrics, "clinical_rlhf_checkpoint_size_bytes") == 123_456
    assert sample_value(metrics, "clinical_rlhf_checkpoint_save_seconds_count") == 1
    assert sample_value(metrics, "clinical_rlhf_events_total", kind="checkpoint") == 1
    with pytest.raises(ValueError, match="^kind "):
        metrics.record_event("patient-42")


def test_every_mapped_key_exports_snake_case_names_with_labels_from_fixed_sets():
    metrics = TrainingMetrics()
    metrics.update({key: 1.0 for key in KEY_SERIES}, step=1)
    metrics.update({f"time/{phase}_seconds": 1.0 for phase in PHASES})
    metrics.observe_generation_latency(0.1)
    metrics.observe_checkpoint(1, 1.0)
    for key in KEY_SERIES:  # the selector the alert export uses matches a real series
        name, labels = KEY_SERIES[key][0]
        assert selector(key).startswith(f"clinical_rlhf_{name}")
        assert sample_value(metrics, f"clinical_rlhf_{name}", **dict(labels)) == 1.0
    from prometheus_client import generate_latest

    families = list(text_string_to_metric_families(generate_latest(metrics.registry).decode()))
    ours = [f for f in families if f.name.startswith("clinical_rlhf_")]
    assert len(ours) > 25 and any(f.name == "process_resident_memory_bytes" for f in families)
    for family in ours:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", family.name)
        for sample in family.samples:
            for label, value in sample.labels.items():
                allowed = ALLOWED_LABEL_VALUES[label]
                assert allowed is None or value in allowed, (family.name, label, value)


def test_each_instance_has_its_own_registry_and_unobserved_series_are_absent():
    first, second = TrainingMetrics(process_collector=False), TrainingMetrics(process_collector=False)
    first.update({"safety/unsafe_ratio": 0.5})
    assert sample_value(first, "clinical_rlhf_unsafe_ratio") == 0.5
    assert sample_value(second, "clinical_rlhf_unsafe_ratio") is None  # absent, not a fake 0
    assert sample_value(first, "clinical_rlhf_expert_agreement_ratio") is None


def test_exporter_serves_metrics_on_a_free_port_and_closes():
    metrics = TrainingMetrics(process_collector=False)
    metrics.update({"safety/unsafe_ratio": 0.125})
    with metrics.start_metrics_server("127.0.0.1", 0) as server:
        assert server.port > 0
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
        assert "clinical_rlhf_unsafe_ratio 0.125" in body
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)


def test_exporter_lingers_after_the_block_so_the_last_values_are_scraped():
    import threading

    metrics = TrainingMetrics(process_collector=False)
    scraped: list[str] = []

    def scrape_after_the_block(url: str) -> None:
        time.sleep(0.3)
        scraped.append(urllib.request.urlopen(url, timeout=5).read().decode())

    with pytest.raises(RuntimeError):
        with metrics.start_metrics_server("127.0.0.1", 0, linger_seconds=1.0) as server:
            metrics.update({"safety/unsafe_ratio": 0.9})
            scraper = threading.Thread(target=scrape_after_the_block, args=(server.url,))
            scraper.start()
            raise RuntimeError("emergency stop")  # the block ends at once; the scrape comes later
    scraper.join()
    assert "clinical_rlhf_unsafe_ratio 0.9" in scraped[0]
    with pytest.raises(ValueError, match="^linger_seconds "):
        with metrics.start_metrics_server("127.0.0.1", 0, linger_seconds=-1):
            pass


def test_registry_mounts_at_metrics_on_a_fastapi_app():
    fastapi = pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    metrics = TrainingMetrics(process_collector=False)
    metrics.observe_generation_latency(0.3)
    app = fastapi.FastAPI()
    app.mount("/metrics", metrics.asgi_app())
    response = TestClient(app).get("/metrics/")
    assert response.status_code == 200
    assert 'clinical_rlhf_generation_latency_seconds_bucket{le="0.5"} 1.0' in response.text
