"""The config's alert rules as a Prometheus rules file, plus a `promtool test rules` file.

`clinical-rlhf alerts export` writes both. Each rule becomes one alerting rule on the exporter's
series (`metrics.selector`), with the context names resolved from the config, labels
`severity`, `action`, `rule`, a `for:` delay (the rule's `for_duration`; by default none for
critical rules, since an emergency stop should page at once, and 5m/15m for warning/info) and
`summary`, `description` and `runbook_url` annotations.
As in the trainer (`alerts.evaluate_rules`), a NaN or infinite value fires the rule:

    clinical_rlhf_unsafe_ratio > 0.1 or clinical_rlhf_unsafe_ratio != clinical_rlhf_unsafe_ratio
        or abs(clinical_rlhf_unsafe_ratio) == Inf

The test file holds, per rule, a series that stays on the quiet side, then crosses the
threshold, then turns NaN, and the alerts expected at each point, so that `promtool test rules`
checks that the exported expressions mean what the config says.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.monitoring.alerts import AlertRule
from clinical_rlhf.monitoring.metrics import KEY_SERIES, selector

GROUP_NAME = "clinical-rlhf"
TEST_LABELS = {"job": "clinical-rlhf", "instance": "trainer"}


def alert_name(rule_name: str) -> str:
    """`safety_violation` -> `SafetyViolation` (Prometheus alert names are CamelCase)."""
    return "".join(part[:1].upper() + part[1:] for part in rule_name.split("_") if part)


def _number(value: float) -> str:
    return repr(float(value))


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases, so the generated files read as plain data."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _go_g4(value: float) -> str:
    """What Go's `printf "%.4g"` prints, for the values the tests use."""
    return "NaN" if math.isnan(value) else f"{value:.4g}"


def _description(rule: AlertRule) -> str:
    return (f"{rule.metric} = {{{{ $value | printf \"%.4g\" }}}} ({rule.condition}); "
            f"the trainer's action is {rule.action}")


def _annotations(rule: AlertRule, description: str) -> dict[str, str]:
    return {"summary": f"{rule.name}: {rule.condition}", "description": description,
            "runbook_url": rule.runbook_url}


_DURATION_MINUTES = {"ms": 1 / 60000, "s": 1 / 60, "m": 1, "h": 60, "d": 1440}


def duration_minutes(duration: str) -> int:
    """A Prometheus duration (`30s`, `5m`, `1h`) in whole minutes, rounded up (the test interval)."""
    unit = next(unit for unit in ("ms", "s", "m", "h", "d") if duration.endswith(unit))
    return math.ceil(int(duration[: -len(unit)]) * _DURATION_MINUTES[unit])


def exportable_rules(
    rules: Iterable[AlertRule], context: Mapping[str, float | None]
) -> tuple[list[tuple[AlertRule, float]], list[str]]:
    """(rule, resolved threshold) for each rule that can be exported, and why others cannot."""
    ready, skipped = [], []
    for rule in rules:
        threshold = rule.resolve_threshold(context)
        if threshold is None:
            skipped.append(f"{rule.name}: `{rule.threshold_name}` is not set in the config, "
                           f"so the rule is disabled")
        else:
            ready.append((rule, threshold))
    return ready, skipped


def rule_expression(rule: AlertRule, threshold: float) -> str:
    series = selector(rule.key)
    return (f"{series} {rule.op} {_number(threshold)} or {series} != {series} "
            f"or abs({series}) == Inf")


def prometheus_rules(ready: Iterable[tuple[AlertRule, float]]) -> dict[str, Any]:
    """The rules document (`groups:`) for `exportable_rules(...)[0]`."""
    entries = [
        {
            "alert": alert_name(rule.name),
            "expr": rule_expression(rule, threshold),
            "for": rule.for_duration,
            "labels": {"severity": rule.severity, "action": rule.action, "rule": rule.name},
            "annotations": _annotations(rule, _description(rule)),
        }
        for rule, threshold in ready
    ]
    return {"groups": [{"name": GROUP_NAME, "rules": entries}]}


def _quiet_and_firing(op: str, threshold: float) -> tuple[float, float]:
    step = max(abs(threshold) * 0.5, 0.05)
    quiet, firing = {
        ">": (threshold - step, threshold + step),
        ">=": (threshold - step, threshold),
        "<": (threshold + step, threshold - step),
        "<=": (threshold + step, threshold),
        "==": (threshold + step, threshold),
        "!=": (threshold, threshold + step),
    }[op]
    return float(f"{quiet:.12g}"), float(f"{firing:.12g}")


def prometheus_rule_tests(ready: Iterable[tuple[AlertRule, float]], rules_file: str) -> dict[str, Any]:
    """A `promtool test rules` document for the rules file named `rules_file` (path relative to
    the test file). Per rule, with F its `for:` in minutes: quiet at 1m, over the threshold from
    2m and firing at F+3m, NaN from F+4m and still firing at F+5m."""
    tests = []
    for rule, threshold in ready:
        quiet, firing = _quiet_and_firing(rule.op, threshold)
        name, labels = KEY_SERIES[rule.key][0]
        series_labels = {**dict(labels), **TEST_LABELS}
        inside = ",".join(f'{label}="{value}"' for label, value in series_labels.items())
        hold = duration_minutes(rule.for_duration)
        values = [quiet, quiet] + [firing] * (hold + 2) + [math.nan, math.nan]
        expected_labels = {**series_labels, "severity": rule.severity, "action": rule.action,
                           "rule": rule.name}

        def expected(value: float) -> list[dict[str, Any]]:
            description = _description(rule).replace(
                '{{ $value | printf "%.4g" }}', _go_g4(value))
            return [{"exp_labels": expected_labels, "exp_annotations": _annotations(rule, description)}]

        tests.append({
            "interval": "1m",
            "input_series": [{
                "series": f"clinical_rlhf_{name}{{{inside}}}",
                "values": " ".join("NaN" if math.isnan(v) else _number(v) for v in values),
            }],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": alert_name(rule.name), "exp_alerts": []},
                {"eval_time": f"{hold + 3}m", "alertname": alert_name(rule.name), "exp_alerts": expected(firing)},
                {"eval_time": f"{hold + 5}m", "alertname": alert_name(rule.name), "exp_alerts": expected(math.nan)},
            ],
        })
    return {"rule_files": [rules_file], "evaluation_interval": "1m", "tests": tests}


HEADER = "# Generated by `clinical-rlhf alerts export` from monitoring.alerts; do not edit.\n"


def to_yaml(document: dict[str, Any]) -> str:
    return HEADER + yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, width=1000)


def write_prometheus_rules(
    rules: Iterable[AlertRule],
    context: Mapping[str, float | None],
    path: Path,
    tests_path: Path | None = None,
) -> list[str]:
    """Write the rules file (and the promtool test file); returns the skipped rules' reasons."""
    ready, skipped = exportable_rules(rules, context)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(prometheus_rules(ready)), encoding="utf-8")
    if tests_path is not None:
        tests_path = Path(tests_path)
        tests_path.parent.mkdir(parents=True, exist_ok=True)
        relative = os.path.relpath(path.resolve(), tests_path.resolve().parent)
        tests_path.write_text(to_yaml(prometheus_rule_tests(ready, Path(relative).as_posix())),
                              encoding="utf-8")
    return skipped
