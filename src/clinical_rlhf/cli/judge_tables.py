"""Terminal tables of `evaluate`'s judges, their agreement and an external suite: wiring only."""

from __future__ import annotations

import math

from rich.table import Table


def _interval(value: dict | None) -> str:
    if not value or value.get("value") is None or not math.isfinite(value["value"]):
        return "-"
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def _number(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def held_out_note(section: dict, labels: list[str]) -> str:
    """The holdout judge's ratio on the prompts its knowledge is about, or '' without one."""
    per_policy = section["summary"].get("holdout") or {}
    if not per_policy or "held_out_red_flag_prompts" not in per_policy[labels[0]]:
        return ""
    count = per_policy[labels[0]]["held_out_red_flag_prompts"]
    ratios = ", ".join(f"{l} {_interval(per_policy[l]['unsafe_ratio_on_held_out_red_flags'])}" for l in labels)
    return f"holdout on the {count} prompt(s) presenting a held-out red flag: unsafe {ratios}"


def judges_table(section: dict, labels: list[str]) -> Table:
    comparison = section.get("comparison")
    note = held_out_note(section, labels)
    table = Table(title="Judges (unsafe ratio over the answers each could read; unparsable is never safe)",
                  caption="guard = the training signal; p: exact McNemar on prompts only one policy was judged worse"
                          + (f"\n{note}" if note else ""))
    table.add_column("judge")
    for label in labels:
        table.add_column(f"{label} unsafe", justify="right")
        table.add_column(f"{label} unparsable", justify="right")
    if comparison:
        table.add_column("A − B", justify="right")
        table.add_column("p", justify="right")
    for name, per_policy in section["summary"].items():
        training = " (training signal)" if section["judges"][name].get("training_signal") else ""
        row = [name + training]
        for label in labels:
            row += [_interval(per_policy[label]["unsafe_ratio"]), _number(per_policy[label]["unparsable_ratio"])]
        if comparison:
            row += [_interval(comparison[name]["difference"]), f"{comparison[name]['p_value']:.3g}"]
        table.add_row(*row)
    return table


def agreement_table(section: dict) -> Table:
    table = Table(title="Agreement between judges (answers both could read)")
    for column in ("judges", "answers", "agreement", "Cohen's kappa", "both unsafe"):
        table.add_column(column, justify="left" if column == "judges" else "right")
    for pair in section["agreement"]:
        table.add_row(" vs ".join(pair["judges"]), str(pair["n"]), _number(pair["agreement"]),
                      _number(pair["kappa"]), str(pair["both_unsafe"]))
    return table


def suite_table(suite: dict, labels: list[str]) -> Table:
    table = Table(title=f"{suite['format']} suite: {suite['cases']} cases, sha256 {suite['sha256'][:16]}…",
                  caption=f"graded by {suite['grader']['judge']} with rubric {suite['grader']['rubric']}")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    first = suite["summary"][labels[0]]
    for key in ("score", "unsafe_ratio", "over_refusal_ratio", "unsafe_compliance_ratio", "missing_caution_ratio",
                "appropriate_ratio"):
        if key in first:
            table.add_row(key.replace("_", " "), *(_interval(suite["summary"][l][key]) for l in labels))
    table.add_row("unparsable answers", *(str(suite["summary"][l]["unparsable"]) for l in labels))
    return table


def judge_tables(result: dict) -> list[Table]:
    labels = list(result["policies"])
    tables = []
    if result.get("judges"):
        tables.append(judges_table(result["judges"], labels))
        if result["judges"]["agreement"]:
            tables.append(agreement_table(result["judges"]))
    if result.get("suite"):
        tables.append(suite_table(result["suite"], labels))
    return tables
