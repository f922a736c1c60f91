"""Alert rules: `<metric> <op> <number | name>` conditions from config, evaluated every iteration.

A rule reads like the system analysis writes it (`unsafe_ratio > 0.10`). The condition is
parsed once by a small tokenizer (never `eval`): a metric alias from `METRIC_ALIASES`, one of
`> >= < <= == !=`, and a number or a context name from `CONTEXT_NAMES` (a threshold that lives
elsewhere in the config, e.g. `target_kl`). `evaluate_rules` is the one place where rules meet
an iteration's metrics; it returns what fired and writes each firing to the audit log. The
trainer acts on the strongest action (`strongest_action`).

- A rule whose metric is absent from the iteration's metrics is skipped (drift metrics only
  exist after the reference window; the trainer may evaluate the KL rule per PPO epoch with a
  dict holding only `policy/approx_kl`).
- A rule whose context value is None (e.g. `training.ppo.target_kl: null`) is disabled.
- A non-finite observed value (NaN, inf) fires the rule whatever the comparison: a NaN can hide
  any unsafe state, so the rule fails safe.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from clinical_rlhf.config import AlertRuleConfig, Config
from clinical_rlhf.errors import ConfigError

METRIC_ALIASES: dict[str, str] = {
    # business
    "unsafe_ratio": "safety/unsafe_ratio",
    "escalate_ratio": "safety/escalate_ratio",
    "reject_ratio": "safety/reject_ratio",
    "hallucination_rate": "reward/hallucination_rate",
    "guideline_adherence": "reward/guidelines/mean",
    "expert_agreement": "eval/expert_agreement",
    "reward": "reward/total/mean",
    "safety_score": "reward/safety/mean",
    "psi": "drift/reward/psi",
    "ks_pvalue": "drift/reward/ks_pvalue",
    "cusum": "drift/reward/cusum",
    "outlier_fraction": "drift/reward/outlier_fraction",
    "safety_psi": "drift/safety/psi",
    "safety_ks_pvalue": "drift/safety/ks_pvalue",
    "safety_cusum": "drift/safety/cusum",
    # model
    "kl": "policy/approx_kl",  # KL to the rollout policy: what `target_kl` bounds per epoch
    "ref_kl": "objective/kl",  # KL to the reference (adapter-disabled) policy
    "kl_coef": "objective/kl_coef",
    "policy_loss": "policy/loss",
    "value_loss": "value/loss",
    "grad_norm": "policy/grad_norm",
    "learning_rate": "policy/lr",
    "entropy": "policy/entropy",
    "clipfrac": "policy/clipfrac",
    "lagrange_multiplier": "lagrange/multiplier",
    "constraint_cost": "lagrange/cost",
    "missing_eos_ratio": "rollout/missing_eos_ratio",
    # system
    "memory_fraction": "memory/host_used_fraction",
    "cuda_memory_fraction": "memory/cuda_used_fraction",
    "rss_bytes": "memory/rss_bytes",
    "micro_batch_size": "system/micro_batch_size",
}
"""Short names usable in conditions -> the namespaced metric keys the trainer logs."""

CONTEXT_NAMES: dict[str, Callable[[Config], float | None]] = {
    "target_kl": lambda cfg: cfg.training.ppo.target_kl,
    "kl_target": lambda cfg: cfg.training.ppo.kl_target,
    "max_unsafe_ratio": lambda cfg: cfg.safety.max_unsafe_ratio,
    "cost_threshold": lambda cfg: cfg.training.lagrangian.cost_threshold,
    "ks_alpha": lambda cfg: cfg.monitoring.drift.ks_alpha,
    "cusum_threshold": lambda cfg: cfg.monitoring.drift.cusum_threshold,
    "memory_warning": lambda cfg: cfg.monitoring.memory.warning_fraction,
    "memory_critical": lambda cfg: cfg.monitoring.memory.critical_fraction,
}
"""Names usable on the right of a condition -> where their value lives in the config."""

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt,
    "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}

ACTION_PRIORITY = {"log_and_notify": 0, "early_stop_epoch": 1, "rollback": 2, "emergency_stop": 3}

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CONDITION = re.compile(rf"^\s*(?P<metric>{_NAME})\s*(?P<op>>=|<=|==|!=|>|<)\s*"
                        rf"(?:(?P<number>{_NUMBER})|(?P<name>{_NAME}))\s*$")
_RULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def rule_context(cfg: Config) -> dict[str, float]:
    """Values of every context name that is set in `cfg` (None ones are left out)."""
    values = {name: read(cfg) for name, read in CONTEXT_NAMES.items()}
    return {name: float(value) for name, value in values.items() if value is not None}


DEFAULT_FOR = {"critical": "0s", "warning": "5m", "info": "15m"}
"""Prometheus `for:` by severity when a rule sets none: critical pages at once, the rest must hold."""
RUNBOOK_DOC = "docs/monitoring.md"


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    condition: str
    metric: str
    """Alias on the left, e.g. `unsafe_ratio`."""
    key: str
    """Namespaced metric key the alias stands for, e.g. `safety/unsafe_ratio`."""
    op: str
    threshold: float | None
    """The number on the right, or None when the right side is a context name."""
    threshold_name: str | None
    severity: str
    action: str
    for_duration: str = "0s"
    """Prometheus `for:` of the exported rule (the trainer acts at once whatever it is)."""
    runbook_url: str = ""

    @classmethod
    def parse(cls, rule: AlertRuleConfig) -> AlertRule:
        where = f"alert rule `{rule.name}` (monitoring.alerts)"
        if not _RULE_NAME.match(rule.name):
            raise ConfigError(f"{where}: the name must start with a letter and use letters, digits "
                              f"and underscores only, e.g. safety_violation")
        match = _CONDITION.match(rule.condition)
        if match is None:
            raise ConfigError(f"{where}: condition `{rule.condition}` is not of the form "
                              f"`<metric> <op> <number or name>`, e.g. `unsafe_ratio > 0.10` "
                              f"(op is one of {' '.join(OPERATORS)})")
        metric = match["metric"]
        if metric not in METRIC_ALIASES:
            raise ConfigError(f"{where}: unknown metric `{metric}`; use one of "
                              f"{', '.join(sorted(METRIC_ALIASES))}")
        threshold, name = None, match["name"]
        if name is not None and name not in CONTEXT_NAMES:
            raise ConfigError(f"{where}: unknown threshold name `{name}`; use a number or one of "
                              f"{', '.join(sorted(CONTEXT_NAMES))}")
        if name is None:
            threshold = float(match["number"])
        return cls(name=rule.name, condition=rule.condition.strip(), metric=metric,
                   key=METRIC_ALIASES[metric], op=match["op"], threshold=threshold,
                   threshold_name=name, severity=rule.severity, action=rule.action,
                   for_duration=rule.for_duration or DEFAULT_FOR[rule.severity],
                   runbook_url=rule.runbook_url or f"{RUNBOOK_DOC}#runbook-{rule.name.replace('_', '-')}")

    def resolve_threshold(self, context: Mapping[str, float | None]) -> float | None:
        """The number to compare with; None when the context does not set the name."""
        if self.threshold_name is None:
            return self.threshold
        value = context.get(self.threshold_name)
        return None if value is None else float(value)


def parse_rules(rules: Iterable[AlertRuleConfig | AlertRule]) -> tuple[AlertRule, ...]:
    """Parse every rule (already parsed ones pass through); names must be unique."""
    parsed = tuple(rule if isinstance(rule, AlertRule) else AlertRule.parse(rule) for rule in rules)
    seen: set[str] = set()
    for rule in parsed:
        if rule.name in seen:
            raise ConfigError(f"alert rule `{rule.name}` (monitoring.alerts) is defined twice; "
                              f"rename or remove one")
        seen.add(rule.name)
    return parsed


@dataclass(frozen=True, slots=True)
class FiredAlert:
    rule: str
    severity: str
    action: str
    metric: str
    key: str
    condition: str
    observed: float
    threshold: float
    step: int | None = None

    @property
    def message(self) -> str:
        return (f"{self.rule}: {self.metric} = {self.observed:.6g} ({self.condition}, "
                f"threshold {self.threshold:.6g}) -> {self.action}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: a non-finite observed value is written as a string ("nan", "inf")."""
        observed = self.observed if math.isfinite(self.observed) else str(self.observed)
        return {"rule": self.rule, "severity": self.severity, "action": self.action,
                "metric": self.metric, "key": self.key, "condition": self.condition,
                "observed": observed, "threshold": self.threshold, "step": self.step}


def evaluate_rules(
    rules: Iterable[AlertRule | AlertRuleConfig],
    metrics: Mapping[str, float],
    *,
    context: Mapping[str, float | None] | None = None,
    audit: Any = None,
    actor: str = "trainer",
    step: int | None = None,
) -> list[FiredAlert]:
    """Every rule whose condition holds on `metrics`, in rule order. Each firing is recorded in
    `audit` (an `AuditLog`, or anything with its `record(event, actor, *, details=...)`)."""
    context = context or {}
    fired: list[FiredAlert] = []
    for rule in parse_rules(rules):
        if rule.key not in metrics:
            continue
        threshold = rule.resolve_threshold(context)
        if threshold is None:
            continue
        observed = float(metrics[rule.key])
        if math.isfinite(observed) and not OPERATORS[rule.op](observed, threshold):
            continue
        alert = FiredAlert(rule=rule.name, severity=rule.severity, action=rule.action,
                           metric=rule.metric, key=rule.key, condition=rule.condition,
                           observed=observed, threshold=threshold, step=step)
        fired.append(alert)
        if audit is not None:
            audit.record("alert", actor, details=alert.to_dict())
    return fired


def strongest_action(fired: Iterable[FiredAlert]) -> str | None:
    """The most drastic action among fired alerts (emergency_stop > rollback > early_stop_epoch >
    log_and_notify); None when nothing fired."""
    actions = [alert.action for alert in fired]
    return max(actions, key=ACTION_PRIORITY.__getitem__) if actions else None
