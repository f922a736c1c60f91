"""`evaluation.html`: one self-contained page (inline SVG, no scripts, no external resources).

Charts: each component's mean with its confidence interval for A and B, the unsafe ratio with
its interval, win/tie/loss per component, and the distribution of the per-prompt paired
differences of the total. Tables: the summary, the conversation-level safety, the expert
agreement and every prompt with its answers. The page style is the run report's
(`monitoring/report.py`), so both pages read alike; the charts use the SVG helpers of
`monitoring/svg.py` (the report's own charts are matplotlib's, `monitoring/plots.py`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from clinical_rlhf.monitoring.report import STYLE
from clinical_rlhf.monitoring.svg import (
    BOTTOM,
    HEIGHT,
    LEFT,
    PALETTE,
    RIGHT,
    TOP,
    WIDTH,
    _fmt,
    _line,
    _open_svg,
    _text,
    nice_ticks,
)

POLICY_COLORS = {"A": PALETTE[0], "B": PALETTE[3]}
OUTCOME_COLORS = {"wins": "#2ca02c", "ties": "#b0b7c3", "losses": "#d62728"}
MAX_TEXT = 400
"""Characters of a question or answer shown in the per-prompt table (the JSON has all of it)."""

EXTRA_STYLE = ".answer{max-width:38em;white-space:pre-wrap}.bad{color:#c62828;font-weight:600}"


def _empty(title: str, message: str) -> str:
    return _open_svg(WIDTH, HEIGHT, title) + _text(WIDTH / 2, HEIGHT / 2, message, "empty", "middle") + "</svg>"


def interval_chart(title: str, groups: Sequence[str], series: Sequence[tuple[str, str, Sequence[dict | None]]],
                   y_label: str = "") -> str:
    """Per group, one dot with a whisker (the interval) per series, side by side."""
    points = [e for _, _, estimates in series for e in estimates if _drawable(e)]
    if not points:
        return _empty(title, "nothing to show")
    ticks = nice_ticks(min([e["low"] for e in points] + [0.0]), max(e["high"] for e in points))
    y_low, y_high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h

    def py(value: float) -> float:
        return bottom - (value - y_low) / (y_high - y_low) * plot_h

    parts = [_open_svg(WIDTH, HEIGHT, title)]
    for tick in ticks:
        parts.append(_line(LEFT, py(tick), WIDTH - RIGHT, py(tick), "grid")
                     + _text(LEFT - 6, py(tick) + 4, _fmt(tick), "tick", "end"))
    if y_low < 0 < y_high:
        parts.append(_line(LEFT, py(0), WIDTH - RIGHT, py(0), "axis"))
    slot = plot_w / max(len(groups), 1)
    for g, group in enumerate(groups):
        center = LEFT + slot * (g + 0.5)
        parts.append(_text(center, bottom + 16, group, "tick", "middle"))
        for s, (name, color, estimates) in enumerate(series):
            estimate = estimates[g] if g < len(estimates) else None
            if not _drawable(estimate):
                continue
            x = center + (s - (len(series) - 1) / 2) * min(18.0, slot / (len(series) + 1))
            tip = (f"{name} {group}: {estimate['value']:.4g} "
                   f"[{_fmt(estimate['low'])}, {_fmt(estimate['high'])}] ({estimate['confidence']:.0%} interval)")
            parts.append(_line(x, py(estimate["low"]), x, py(estimate["high"]), "whisker", color, tip))
            for end in (estimate["low"], estimate["high"]):
                parts.append(_line(x - 4, py(end), x + 4, py(end), "whisker", color))
            parts.append(f'<circle cx="{x:.1f}" cy="{py(estimate["value"]):.1f}" r="3.5" fill="{color}">'
                         f"<title>{escape(tip)}</title></circle>")
    if y_label:
        parts.append(f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" class="label" '
                     f'text-anchor="middle">{escape(y_label)}</text>')
    parts.append(_legend([(name, color) for name, color, _ in series]))
    return "".join(parts) + "</svg>"


def _drawable(estimate: dict | None) -> bool:
    """An estimate with a finite value and interval (a JSON round trip turns NaN into None)."""
    return bool(estimate) and all(isinstance(estimate.get(key), (int, float)) and math.isfinite(estimate[key])
                                  for key in ("value", "low", "high"))


def _legend(entries: Sequence[tuple[str, str]]) -> str:
    parts, x = [], LEFT
    for name, color in entries:
        parts.append(f'<rect x="{x}" y="{TOP - 11}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{x + 13}" y="{TOP - 7}" class="legend">{escape(name)}</text>')
        x += 22 + 6.2 * len(name)
    return "".join(parts)


def outcome_bars(title: str, outcomes: Sequence[tuple[str, dict]]) -> str:
    """One horizontal bar per row: the shares of prompts A wins, ties and loses."""
    if not outcomes:
        return _empty(title, "no comparison (no baseline)")
    left, bar_h, gap = 92, 16, 8
    height = TOP + len(outcomes) * (bar_h + gap) + 24
    plot_w = WIDTH - left - RIGHT
    parts = [_open_svg(WIDTH, height, title)]
    for r, (label, counts) in enumerate(outcomes):
        y = TOP + r * (bar_h + gap)
        n = max(counts["wins"] + counts["ties"] + counts["losses"], 1)
        parts.append(_text(left - 6, y + bar_h - 4, label, "tick", "end"))
        x = float(left)
        for kind in ("wins", "ties", "losses"):
            width = plot_w * counts[kind] / n
            if width > 0:
                tip = f"{label}: {kind} {counts[kind]} of {n} ({counts[kind] / n:.1%})"
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{bar_h}" '
                             f'fill="{OUTCOME_COLORS[kind]}"><title>{escape(tip)}</title></rect>')
                if width > 28:
                    parts.append(_text(x + width / 2, y + bar_h - 4, f"{counts[kind] / n:.0%}", "tick", "middle",
                                       "#1d2330" if kind == "ties" else "#fff"))
            x += width
    axis_y = TOP + len(outcomes) * (bar_h + gap)
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(_text(left + plot_w * share, axis_y + 10, f"{share:.0%}", "tick", "middle"))
    parts.append(_legend([("A wins", OUTCOME_COLORS["wins"]), ("tie", OUTCOME_COLORS["ties"]),
                          ("B wins", OUTCOME_COLORS["losses"])]))
    return "".join(parts) + "</svg>"


def histogram(title: str, values: Sequence[float], x_label: str, bins: int = 20) -> str:
    """Counts of `values` in equal bins, with dashed lines at zero and at the mean."""
    data = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if data.size == 0:
        return _empty(title, "no paired differences (no baseline)")
    ticks = nice_ticks(min(float(data.min()), 0.0), max(float(data.max()), 0.0), 6)
    x_low, x_high = ticks[0], ticks[-1]
    counts, edges = np.histogram(data, bins=bins, range=(x_low, x_high))
    count_ticks = nice_ticks(0.0, float(max(counts.max(), 1)), 5)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(count: float) -> float:
        return bottom - count / count_ticks[-1] * plot_h

    parts = [_open_svg(WIDTH, HEIGHT, title)]
    for tick in count_ticks:
        parts.append(_line(LEFT, py(tick), WIDTH - RIGHT, py(tick), "grid")
                     + _text(LEFT - 6, py(tick) + 4, _fmt(tick), "tick", "end"))
    for tick in ticks:
        parts.append(_text(px(tick), bottom + 16, _fmt(tick), "tick", "middle"))
    for count, low, high in zip(counts, edges[:-1], edges[1:]):
        if count:
            width = max(px(high) - px(low) - 1, 1)
            parts.append(f'<rect x="{px(low) + 0.5:.1f}" y="{py(count):.1f}" width="{width:.1f}" '
                         f'height="{bottom - py(count):.1f}" fill="{PALETTE[0]}" fill-opacity="0.75">'
                         f"<title>{_fmt(low)} to {_fmt(high)}: {count} prompts</title></rect>")
    parts.append(_line(LEFT, bottom, WIDTH - RIGHT, bottom, "axis"))
    mean = float(data.mean())
    parts.append(_line(px(0.0), TOP, px(0.0), bottom, "event", "#555", "no difference"))
    parts.append(_line(px(mean), TOP, px(mean), bottom, "event", PALETTE[1], f"mean {mean:.4g}"))
    parts.append(_text(LEFT + plot_w / 2, HEIGHT - 4, x_label, "label", "middle"))
    parts.append(_legend([(f"mean {mean:+.3g}", PALETTE[1])]))
    return "".join(parts) + "</svg>"


# ----------------------------------------------------------------------------- tables


def _number(value, digits: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, digits)
    return escape(str(value))


def _estimate(estimate: dict | None) -> str:
    if not estimate:
        return "—"
    interval = f"[{_number(estimate['low'])}, {_number(estimate['high'])}]"
    return f'{_number(estimate["value"])} <span class="muted">{interval}</span>'


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _summary_table(result: dict) -> str:
    summary, comparison = result.get("summary") or {}, result.get("comparison")
    if not summary:
        return '<p class="muted">No single-turn prompts were evaluated.</p>'
    labels = list(summary)
    names = list(summary[labels[0]]["components"])
    header = ["", *(f"{label} mean [CI]" for label in labels)]
    if comparison:
        header += ["A − B [CI]", "A wins / ties / B wins", f"p ({comparison['total']['test']})"]
    body = []
    for name in names:
        row = [escape(name), *(_estimate(summary[label]["components"][name]) for label in labels)]
        if comparison:
            c = comparison["components"][name]
            row += [_estimate(c["mean_difference"]), f"{c['wins']} / {c['ties']} / {c['losses']}",
                    _number(c["p_value"], ".3g")]
        body.append(row)
    unsafe = ["unsafe ratio", *(_estimate(summary[label]["unsafe_ratio"]) for label in labels)]
    if comparison:
        u = comparison["unsafe_ratio"]
        unsafe += [_estimate(u["difference"]), f"A worse {u['a_worse']}, B worse {u['b_worse']}",
                   _number(u["p_value"], ".3g")]
    body.append(unsafe)
    for key, title in (("kl", "KL to reference (nats)"), ("missing_eos_ratio", "missing EOS ratio"),
                       ("mean_length", "mean answer length (tokens)")):
        body.append([title, *(_number(summary[label][key]) for label in labels), *([""] * (3 if comparison else 0))])
    return _table(header, body)


def _conversation_table(result: dict) -> str:
    section = result.get("conversations")
    if not section:
        return '<p class="muted">The conversation set was not part of this evaluation.</p>'
    labels = [label for label in ("A", "B") if label in section]
    body = []
    first = section[labels[0]]
    if "red_flag_earlier" in first:
        body.append(["red flag in an earlier turn", str(first["red_flag_earlier"]["conversations"]), "unsafe ratio",
                     *(_estimate(section[l]["red_flag_earlier"]["unsafe_ratio"]) for l in labels)])
        body.append(["", "", "red flag caught by the guard",
                     *(_number(section[l]["red_flag_earlier"]["flag_caught_ratio"]) for l in labels)])
        body.append(["", "", "answer gave emergency advice",
                     *(_number(section[l]["red_flag_earlier"]["emergency_advice_ratio"]) for l in labels)])
    if "red_flag_denied" in first:
        body.append(["red flag denied in an earlier turn", str(first["red_flag_denied"]["conversations"]), "unsafe ratio",
                     *(_estimate(section[l]["red_flag_denied"]["unsafe_ratio"]) for l in labels)])
        body.append(["", "", "false alarm (flag raised anyway)",
                     *(_number(section[l]["red_flag_denied"]["false_alarm_ratio"]) for l in labels)])
    missed = first.get("red_flag_earlier", {}).get("missed", [])
    note = (f'<p class="muted">Red flags the guard missed in A\'s conversations: {escape(", ".join(missed))}</p>'
            if missed else "")
    return _table(["set", "conversations", "measure", *labels], body) + note


def _agreement_section(agreement: dict | None) -> str:
    if not agreement:
        return '<p class="muted">No expert agreement in this evaluation.</p>'
    if "skipped" in agreement:
        return f'<p class="muted">Expert agreement skipped: {escape(agreement["skipped"])}</p>'
    verdict = "meets" if agreement["meets_target"] else "misses"
    status = "good" if agreement["meets_target"] else "bad"
    head = (f'<div class="cards"><div class="card {status}"><span>expert agreement '
            f'(target {agreement["target"]:g})</span><b>{_number(agreement["agreement"]["value"])}</b></div>'
            f'<div class="card"><span>Cohen\'s kappa</span><b>{_number(agreement["kappa"])}</b></div>'
            f'<div class="card"><span>agreement on decisive pairs</span>'
            f'<b>{_number(agreement["decisive_agreement"])}</b></div>'
            f'<div class="card"><span>records</span><b>{agreement["n"]}</b></div></div>'
            f'<p class="muted">{escape(str(agreement.get("preferences")))}: the system {verdict} the target; interval '
            f'{_estimate(agreement["agreement"])}. A tie matches only a tie.</p>')
    groups = []
    for key, title in (("by_source", "source"), ("by_objective", "objective"), ("by_annotator", "annotator")):
        for name, values in (agreement.get(key) or {}).items():
            groups.append([escape(title), escape(name), str(values["n"]), _number(values["agreement"]),
                           _number(values["kappa"])])
    return head + (_table(["by", "group", "records", "agreement", "kappa"], groups) if groups else "")


def _clip(text: str) -> str:
    return escape(text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …")


def _rows_table(result: dict) -> str:
    labels = [label for label in ("A", "B") if label in (result.get("policies") or {})]
    body = []
    for row in result.get("rows", []):
        cells = [escape(row["id"]), _clip(row["question"])]
        for label in labels:
            first = row[label][0] if row.get(label) else None
            if first is None:
                cells += ["", ""]
                continue
            flag = ' class="bad"' if first["unsafe"] else ""
            cells += [f'<div class="answer">{_clip(first["response"])}</div>',
                      f'<span{flag}>{_number(first["total"])} {escape(first["action"])}</span>']
        if "difference" in row:
            cells.append(_number(row["difference"], "+.3f"))
        body.append(cells)
    header = ["id", "question"] + [h for label in labels for h in (f"{label} answer (first sample)", f"{label} total")]
    if len(labels) == 2:
        header.append("A − B")
    return _table(header, body)


def render_evaluation(result: dict) -> str:
    """The page for an `evaluate_policies` result."""
    from clinical_rlhf.evaluation.judge_html import judges_html, suite_html

    policies = result.get("policies") or {}
    labels = list(policies)
    names = {label: f"{label}: {policies[label]['name']}" for label in labels}
    summary = result.get("summary") or {}
    comparison = result.get("comparison")
    components = list(summary[labels[0]]["components"]) if summary else []
    charts = [
        interval_chart("Reward components: mean and interval", components,
                       [(names[l], POLICY_COLORS[l], [summary[l]["components"][c] for c in components]) for l in summary],
                       "mean per prompt"),
    ]
    unsafe_groups = ["held-out"] if summary else []
    conversation = result.get("conversations") or {}
    if "red_flag_earlier" in conversation.get("A", {}):
        unsafe_groups.append("conversations")
    charts.append(interval_chart("Unsafe (vetoed) answer ratio", unsafe_groups, [
        (names[l], POLICY_COLORS[l], ([summary[l]["unsafe_ratio"]] if summary else [])
         + ([conversation[l]["red_flag_earlier"]["unsafe_ratio"]] if "conversations" in unsafe_groups else []))
        for l in labels], "ratio"))
    outcomes = [(name, comparison["components"][name]) for name in components] if comparison else []
    charts.append(outcome_bars("A vs B per prompt: wins, ties, losses", outcomes))
    differences = [row["difference"] for row in result.get("rows", [])
                   if "difference" in row and row.get("source") != "conversation"]
    charts.append(histogram("Paired differences of the total (A − B)", differences, "reward difference per prompt"))
    title = "Clinical RLHF evaluation: " + " vs ".join(policies[l]["name"] for l in labels)
    settings = result.get("settings", {})
    headline = ""
    if comparison:
        total = comparison["total"]
        headline = (f'<p>A wins {total["win_rate"]["value"]:.1%} of prompts [{_number(total["win_rate"]["low"])}, '
                    f'{_number(total["win_rate"]["high"])}], ties {total["tie_rate"]:.1%}; mean difference '
                    f'{_estimate(total["mean_difference"])}; {escape(total["test"])} '
                    f'p = {_number(total["p_value"], ".3g")}.</p>')
    subtitle = (f"model {result.get('model')} · {result.get('prompts', {}).get('evaluated', 0)} prompts + "
                f"{result.get('prompts', {}).get('conversations', 0)} conversations · "
                f"{settings.get('samples_per_prompt')} answer(s) per prompt · seed {settings.get('seed')} · "
                f"{settings.get('confidence_level', 0):.0%} percentile-bootstrap intervals "
                f"({settings.get('bootstrap_resamples')} resamples) · generated {result.get('created')}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}{EXTRA_STYLE}'
        f"svg .whisker{{stroke-width:1.6}}</style></head><body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p>"
        f"</header><main>{headline}<h2>Charts</h2><div class=\"grid2\">{''.join(charts)}</div>"
        f"<h2>Summary</h2>{_summary_table(result)}"
        f'<p class="muted">Vetoed answers count 0 for each component and the veto penalty for the total. '
        f"Ties: totals within {settings.get('tie_epsilon')}.</p>"
        f"<h2>Conversation-level safety</h2>{_conversation_table(result)}"
        f"<h2>Expert agreement</h2>{_agreement_section(result.get('agreement'))}"
        f"{judges_html(result)}{suite_html(result)}"
        f"<h2>Prompts</h2>{_rows_table(result)}"
        f'<p class="muted">evaluation.json next to this page has every answer, score, verdict and flag.</p>'
        f"</main></body></html>")
