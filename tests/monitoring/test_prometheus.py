"""The exported Prometheus rules: promtool checks them, and a real Prometheus server scraping a
run's exporter fires the emergency-stop alert when the run goes over the threshold."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from clinical_rlhf.cli import app
from clinical_rlhf.config import Config
from clinical_rlhf.errors import EmergencyStop
from clinical_rlhf.monitoring.alerts import parse_rules, rule_context
from clinical_rlhf.monitoring.metrics import TrainingMetrics
from clinical_rlhf.monitoring.prometheus_rules import write_prometheus_rules

from .simulated_run import play_run

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (Debian package `prometheus`)")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="prometheus not installed (Debian package `prometheus`)")


def promtool(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_export_structure(tmp_path):
    cfg = Config()
    write_prometheus_rules(parse_rules(cfg.monitoring.alerts), rule_context(cfg), tmp_path / "rules.yml")
    group = yaml.safe_load((tmp_path / "rules.yml").read_text())["groups"][0]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert set(alerts) == {"SafetyViolation", "RewardDrift", "TrainingDivergence"}
    assert alerts["SafetyViolation"]["expr"].startswith("clinical_rlhf_unsafe_ratio > 0.1 or")
    assert alerts["SafetyViolation"]["labels"] == {"severity": "critical", "action": "emergency_stop",
                                                   "rule": "safety_violation"}
    assert alerts["TrainingDivergence"]["expr"].startswith(
        'clinical_rlhf_kl_divergence_nats{against="rollout"} > 0.1 or')  # target_kl resolved
    # critical pages at once, a warning must hold 5 minutes; every rule says what to do
    assert [alerts[name]["for"] for name in ("SafetyViolation", "RewardDrift")] == ["0s", "5m"]
    assert alerts["RewardDrift"]["annotations"]["runbook_url"] == "docs/monitoring.md#runbook-reward-drift"
    assert alerts["RewardDrift"]["annotations"]["summary"] == "reward_drift: psi > 0.25"


def test_a_rule_sets_its_own_for_and_runbook(tmp_path):
    cfg = Config.model_validate({"monitoring": {"alerts": [
        {"name": "drift", "condition": "psi > 0.3", "for_duration": "2m", "runbook_url": "https://wiki/drift"}]}})
    write_prometheus_rules(parse_rules(cfg.monitoring.alerts), rule_context(cfg), tmp_path / "r.yml",
                           tmp_path / "t.yml")
    [rule] = yaml.safe_load((tmp_path / "r.yml").read_text())["groups"][0]["rules"]
    assert rule["for"] == "2m" and rule["annotations"]["runbook_url"] == "https://wiki/drift"
    [test] = yaml.safe_load((tmp_path / "t.yml").read_text())["tests"]
    assert [check["eval_time"] for check in test["alert_rule_test"]] == ["1m", "5m", "7m"]  # firing after for
    if shutil.which("promtool"):
        assert promtool("test", "rules", tmp_path / "t.yml").returncode == 0


@needs_promtool
def test_promtool_checks_and_unit_tests_the_exported_rules(tmp_path):
    rules, tests = tmp_path / "rules.yml", tmp_path / "tests" / "rules_test.yml"
    result = CliRunner().invoke(app, ["alerts", "export", "-c", "config/production_config.yaml",
                                      "-o", str(rules), "--tests", str(tests)])
    assert result.exit_code == 0, result.output
    checked = promtool("check", "rules", rules)
    assert checked.returncode == 0 and "SUCCESS: 3 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", tests)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The unit tests can fail: an expression drifting from the config is caught.
    rules.write_text(rules.read_text().replace("clinical_rlhf_unsafe_ratio > 0.1", "clinical_rlhf_unsafe_ratio > 0.5"))
    assert promtool("test", "rules", tests).returncode != 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def prometheus_server(tmp_path: Path, rules: Path, target_port: int) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping `target_port` every second; yields its base URL."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "clinical-rlhf",
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                return urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_for(ready, 30, "Prometheus to start")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def firing(base: str, name: str) -> list[dict]:
    alerts = get_json(f"{base}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def scraped_iteration(base: str) -> float:
    query = urllib.parse.quote("clinical_rlhf_iteration")
    result = get_json(f"{base}/api/v1/query?query={query}")["data"]["result"]
    return float(result[0]["value"][1]) if result else -1.0


@needs_prometheus
def test_prometheus_scrapes_a_run_and_fires_the_emergency_stop(make_cfg, tmp_path):
    cfg = make_cfg("prometheus-e2e", "monitoring.tracking.enabled=false", "monitoring.prometheus.port=0")
    rules = tmp_path / "rules.yml"
    write_prometheus_rules(parse_rules(cfg.monitoring.alerts), rule_context(cfg), rules)
    metrics = TrainingMetrics()
    seen_healthy: list[int] = []

    with metrics.start_metrics_server(cfg.monitoring.prometheus.host, cfg.monitoring.prometheus.port) as exporter:
        with prometheus_server(tmp_path, rules, exporter.port) as base:
            def on_step(step: int, step_metrics: dict[str, float]) -> None:
                if step == 4:  # last healthy iteration: Prometheus sees it and stays quiet
                    wait_for(lambda: scraped_iteration(base) == 4, 20, "the scrape of step 4")
                    time.sleep(1.5)  # at least one rule evaluation on the healthy values
                    assert firing(base, "SafetyViolation") == []
                    seen_healthy.append(step)

            with pytest.raises(EmergencyStop):
                play_run(cfg, iterations=10, unsafe_from=5, metrics=metrics, on_step=on_step)
            assert seen_healthy == [4]
            alerts = wait_for(lambda: firing(base, "SafetyViolation"), 20, "SafetyViolation to fire")
    labels = alerts[0]["labels"]
    assert labels["action"] == "emergency_stop" and labels["severity"] == "critical"
    assert float(alerts[0]["value"]) == pytest.approx(0.35)
    events = [json.loads(line) for line in (cfg.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events][-2:] == ["emergency_stop", "run_end"]
    assert events[-1]["status"] == "KILLED" and events[-2]["step"] == 5
