"""The exporter's linger after training says why the process has not exited yet."""

from __future__ import annotations

import logging

from clinical_rlhf.monitoring.metrics import TrainingMetrics


def test_lingering_exporter_says_it_is_waiting(caplog):
    metrics = TrainingMetrics(process_collector=False)
    with caplog.at_level(logging.INFO, logger="clinical_rlhf.monitoring.metrics"):
        with metrics.start_metrics_server("127.0.0.1", 0, linger_seconds=0.01) as server:
            port = server.port
    [record] = [r for r in caplog.records if "final Prometheus scrape" in r.getMessage()]
    assert f"127.0.0.1:{port}/metrics up 0.01 s more" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clinical_rlhf.monitoring.metrics"):
        with metrics.start_metrics_server("127.0.0.1", 0):
            pass
    assert not caplog.records  # no linger, nothing to say
