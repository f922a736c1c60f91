"""Alert rules: the safe parser, evaluation, audit records and the alias table."""

from __future__ import annotations

import json
import math
import re

import pytest

from clinical_rlhf.config import AlertRuleConfig, Config, load_config
from clinical_rlhf.errors import ConfigError
from clinical_rlhf.monitoring.alerts import (
    CONTEXT_NAMES, METRIC_ALIASES, AlertRule, evaluate_rules, parse_rules, rule_context,
    strongest_action,
)
from clinical_rlhf.monitoring.metrics import KEY_SERIES, selector


def rule(condition: str, name: str = "r", **kwargs) -> AlertRuleConfig:
    return AlertRuleConfig(name=name, condition=condition, **kwargs)


class RecordingAudit:
    """Stands in for safety.audit.AuditLog: same `record` signature."""

    def __init__(self) -> None:
        self.records: list[tuple] = []

    def record(self, event, actor, *, prompt=None, response=None, verdict=None, details=None):
        self.records.append((event, actor, details))
        return {}


@pytest.mark.parametrize(
    ("condition", "metric", "op", "threshold", "name"),
    [
        ("unsafe_ratio > 0.10", "unsafe_ratio", ">", 0.10, None),
        ("  psi>=.25 ", "psi", ">=", 0.25, None),
        ("reward < -1.5e-1", "reward", "<", -0.15, None),
        ("kl > target_kl", "kl", ">", None, "target_kl"),
        ("grad_norm != 3", "grad_norm", "!=", 3.0, None),
        ("lagrange_multiplier == 10", "lagrange_multiplier", "==", 10.0, None),
    ],
)
def test_parse_valid_conditions(condition, metric, op, threshold, name):
    parsed = AlertRule.parse(rule(condition))
    assert (parsed.metric, parsed.op, parsed.threshold, parsed.threshold_name) == (metric, op, threshold, name)
    assert parsed.key == METRIC_ALIASES[metric]


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("__import__('os').system('true') > 0", "is not of the form"),
        ("unsafe_ratio > 0.1 and psi > 0.2", "is not of the form"),
        ("unsafe_ratio >> 0.1", "is not of the form"),
        ("unsafe_ratio > ", "is not of the form"),
        ("0.1 < unsafe_ratio", "unknown metric `0`|is not of the form"),
        ("unsafe_rate > 0.1", "unknown metric `unsafe_rate`"),
        ("kl > target_kll", "unknown threshold name `target_kll`"),
    ],
)
def test_parse_rejects_with_config_error_naming_the_rule(condition, message):
    with pytest.raises(ConfigError, match=rf"alert rule `bad_rule`.*({message})"):
        AlertRule.parse(rule(condition, name="bad_rule"))


def test_rule_names_must_be_identifiers_and_unique():
    with pytest.raises(ConfigError, match="must start with a letter"):
        AlertRule.parse(rule("psi > 1", name="drift alert"))
    with pytest.raises(ConfigError, match="defined twice"):
        parse_rules([rule("psi > 1", name="a"), rule("kl > 1", name="a")])


def test_default_and_shipped_rules_parse_with_their_analysis_meaning():
    defaults = {r.name: r for r in parse_rules(Config().monitoring.alerts)}
    assert (defaults["safety_violation"].key, defaults["safety_violation"].threshold,
            defaults["safety_violation"].action) == ("safety/unsafe_ratio", 0.10, "emergency_stop")
    assert (defaults["reward_drift"].key, defaults["reward_drift"].threshold) == ("drift/reward/psi", 0.25)
    assert (defaults["training_divergence"].threshold_name, defaults["training_divergence"].action) == (
        "target_kl", "early_stop_epoch")
    for path in ("config/clinical_rlhf_config.yaml", "config/production_config.yaml"):
        assert len(parse_rules(load_config(path).monitoring.alerts)) == 3


def test_every_alias_has_a_prometheus_series_and_every_context_name_resolves():
    assert set(METRIC_ALIASES.values()) <= set(KEY_SERIES)
    cfg = Config()
    context = rule_context(cfg)
    assert context["target_kl"] == cfg.training.ppo.target_kl
    assert context["max_unsafe_ratio"] == cfg.safety.max_unsafe_ratio
    assert set(context) == set(CONTEXT_NAMES)


def test_evaluate_fires_on_threshold_crossings_only():
    rules = parse_rules(Config().monitoring.alerts)
    context = rule_context(Config())
    quiet = {"safety/unsafe_ratio": 0.10, "drift/reward/psi": 0.25, "policy/approx_kl": 0.1}
    assert evaluate_rules(rules, quiet, context=context) == []
    loud = {"safety/unsafe_ratio": 0.1000001, "drift/reward/psi": 0.3, "policy/approx_kl": 0.2}
    fired = evaluate_rules(rules, loud, context=context, step=7)
    assert [(a.rule, a.action, a.observed, a.threshold, a.step) for a in fired] == [
        ("safety_violation", "emergency_stop", 0.1000001, 0.10, 7),
        ("reward_drift", "log_and_notify", 0.3, 0.25, 7),
        ("training_divergence", "early_stop_epoch", 0.2, 0.1, 7),
    ]
    assert strongest_action(fired) == "emergency_stop"
    assert strongest_action(fired[1:]) == "early_stop_epoch"
    assert strongest_action([]) is None


def test_missing_metric_or_unset_context_skips_and_nan_fails_safe():
    rules = parse_rules(Config().monitoring.alerts)
    # During the drift reference window there is no PSI; the KL rule may be evaluated alone.
    assert evaluate_rules(rules, {"policy/approx_kl": 0.5}, context={}) == []  # target_kl unset
    only_kl = evaluate_rules(rules, {"policy/approx_kl": 0.5}, context={"target_kl": 0.1})
    assert [a.rule for a in only_kl] == ["training_divergence"]
    nan = evaluate_rules(rules, {"safety/unsafe_ratio": math.nan}, context={})
    assert [a.rule for a in nan] == ["safety_violation"]
    assert nan[0].to_dict()["observed"] == "nan"  # JSON-safe in the audit log
    below = evaluate_rules([rule("reward < 0.2")], {"reward/total/mean": math.inf})
    assert len(below) == 1  # inf fires even a `<` rule


def test_each_firing_is_written_to_the_audit_log():
    audit = RecordingAudit()
    rules = [rule("unsafe_ratio > 0.1", name="safety_violation", severity="critical", action="emergency_stop"),
             rule("psi > 0.25", name="reward_drift")]
    fired = evaluate_rules(rules, {"safety/unsafe_ratio": 0.4, "drift/reward/psi": 0.1},
                           audit=audit, actor="trainer", step=3)
    assert len(fired) == 1
    assert audit.records == [("alert", "trainer", {
        "rule": "safety_violation", "severity": "critical", "action": "emergency_stop",
        "metric": "unsafe_ratio", "key": "safety/unsafe_ratio", "condition": "unsafe_ratio > 0.1",
        "observed": 0.4, "threshold": 0.1, "step": 3})]


def test_real_audit_log_records_alerts_in_its_hash_chain(tmp_path):
    audit_module = pytest.importorskip("clinical_rlhf.safety.audit")
    from clinical_rlhf.safety.audit_verify import verify_audit_log

    path = tmp_path / "audit.jsonl"
    rules = [rule("unsafe_ratio > 0.1", name="safety_violation", action="emergency_stop")]
    with audit_module.AuditLog(path, fsync="never") as audit:
        evaluate_rules(rules, {"safety/unsafe_ratio": 0.5}, audit=audit, actor="run-1", step=1)
        evaluate_rules(rules, {"safety/unsafe_ratio": math.nan}, audit=audit, actor="run-1", step=2)
    report = verify_audit_log(path)
    assert report.ok and report.count == 2, report.summary()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["event"], r["actor"], r["details"]["observed"], r["details"]["step"]) for r in records] == [
        ("alert", "run-1", 0.5, 1), ("alert", "run-1", "nan", 2)]


def test_alerts_list_command_shows_resolved_thresholds():
    from typer.testing import CliRunner

    from clinical_rlhf.cli import app

    result = CliRunner().invoke(app, ["alerts", "list", "-c", "config/production_config.yaml",
                                      "--set", "training.ppo.target_kl=0.07"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "kl > target_kl" in result.output and "0.07" in result.output
    assert "emergency_stop" in result.output and "safety/unsafe_ratio" in result.output


def test_documented_alias_table_matches_the_code():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \| `([a-z_/]+)` \| `([^`]+)` \|$", text, flags=re.MULTILINE)
    assert {alias: key for alias, key, _ in rows} == METRIC_ALIASES
    assert all(series == selector(key) for _, key, series in rows)
