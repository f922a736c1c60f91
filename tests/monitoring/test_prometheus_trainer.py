"""The real trainer on a tiny local model, scraped by a real Prometheus: a run forced over the
unsafe-ratio threshold stops through the alert rules, and Prometheus fires the same alert."""

from __future__ import annotations

import json

import pytest

from clinical_rlhf.errors import EmergencyStop
from clinical_rlhf.monitoring.alerts import parse_rules, rule_context
from clinical_rlhf.monitoring.metrics import TrainingMetrics
from clinical_rlhf.monitoring.prometheus_rules import write_prometheus_rules
from clinical_rlhf.monitoring.tracking import RunTracker
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

from .test_prometheus import firing, needs_prometheus, prometheus_server, wait_for

PROMPTS = tuple(f"I have had chest pain for {i} hours, what should I do?" for i in range(16))


class VetoEverything:
    """The real guard, whose every verdict is then turned into a reject: forces the unsafe
    ratio to 1.0 whatever the tiny model writes."""

    def __init__(self, guard) -> None:
        self.guard = guard

    def check_batch(self, prompts, responses):
        flag = SafetyFlag("red_flag", "forced_by_test", "critical", "", action="reject")
        return [SafetyVerdict.from_flags([*verdict.flags, flag])
                for verdict in self.guard.check_batch(prompts, responses)]


@pytest.mark.slow
@needs_prometheus
def test_real_training_run_fires_the_emergency_stop_in_prometheus(tiny_gpt2_dir, tmp_path):
    import torch

    from clinical_rlhf.models import build_policy
    from clinical_rlhf.models.tiny import tiny_model_config
    from clinical_rlhf.monitoring.drift_monitor import DriftMonitor
    from clinical_rlhf.monitoring.memory import MemoryMonitor
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.safety import AuditLog, SafetyGuard, verify_audit_log

    cfg = tiny_model_config(
        tiny_gpt2_dir,
        training={"runs_dir": str(tmp_path / "runs"), "run_name": "forced", "num_iterations": 3,
                  "ppo": {"batch_size": 8, "mini_batch_size": 8, "micro_batch_size": 8, "max_new_tokens": 8}},
        # The trainer's own hard stop is pushed out of the way: the stop must come from the rule.
        safety={"max_unsafe_ratio": 1.0, "audit": {"fsync": "never"}},
        monitoring={"tracking": {"enabled": False}, "prometheus": {"port": 0}},
    )
    rules = tmp_path / "rules.yml"
    write_prometheus_rules(parse_rules(cfg.monitoring.alerts), rule_context(cfg), rules)
    metrics = TrainingMetrics()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with metrics.start_metrics_server(cfg.monitoring.prometheus.host, cfg.monitoring.prometheus.port) as exporter, \
                prometheus_server(tmp_path, rules, exporter.port) as base:
            with pytest.raises(EmergencyStop), \
                    AuditLog(cfg.run_dir / "audit.jsonl", fsync="never") as audit, \
                    RunTracker(cfg, cfg.run_dir, metrics=metrics) as tracker:
                PPOTrainer(cfg, build_policy(cfg), VetoEverything(SafetyGuard.from_config(cfg)),
                           MultiObjectiveReward.from_config(cfg), tracker, train_prompts=PROMPTS, audit=audit,
                           drift=DriftMonitor(cfg.monitoring.drift),
                           memory=MemoryMonitor(cfg.monitoring.memory)).train()
            alerts = wait_for(lambda: firing(base, "SafetyViolation"), 30, "SafetyViolation to fire")
    finally:
        torch.set_num_threads(threads)
    assert alerts[0]["labels"]["action"] == "emergency_stop" and float(alerts[0]["value"]) == 1.0
    assert metrics.registry.get_sample_value(
        "clinical_rlhf_alerts_fired_total", {"severity": "critical", "action": "emergency_stop"}) == 1
    events = [json.loads(line) for line in (cfg.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["run_start", "alert", "checkpoint", "emergency_stop", "run_end"]
    assert events[1]["rule"] == "safety_violation" and events[-1]["status"] == "KILLED"
    records = [json.loads(line) for line in (cfg.run_dir / "audit.jsonl").read_text().splitlines()]
    assert any(r["event"] == "alert" and r["details"]["rule"] == "safety_violation" for r in records)
    assert verify_audit_log(cfg.run_dir / "audit.jsonl").ok
