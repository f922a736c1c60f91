"""`evaluation.html`: one self-contained page (inline SVG, no scripts, no external resources).

Charts: each component's mean with its confidence interval for A and B, the unsafe ratio with
its interval, win/tie/loss per component, and the distribution of the per-prompt paired
differences of the total. Tables: the summary, the conversation-level safety, the expert
agreement and every prompt with its answers. The page style is the run report's
(`monitoring/report.py`), so both pages read alike, and so are the charts: drawn by matplotlib
with the report's helpers (`monitoring/plots.py`), inline SVG with text kept as text and a hover
title on every estimate, bar and line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from clinical_rlhf.evaluation.html_cells import clipped, estimate_cell, html_table, number_cell
from clinical_rlhf.evaluation.judge_html import judges_html, suite_html
from clinical_rlhf.monitoring.plots import PALETTE, RC, SIZE_INCHES, empty_chart, inline_svg, new_figure
from clinical_rlhf.monitoring.report import STYLE

POLICY_COLORS = {"A": PALETTE[0], "B": PALETTE[3]}
OUTCOME_COLORS = {"wins": "#2ca02c", "ties": "#b0b7c3", "losses": "#d62728"}
OUTCOME_LABELS = {"wins": "A wins", "ties": "tie", "losses": "B wins"}

EXTRA_STYLE = ".answer{max-width:38em;white-space:pre-wrap}.bad{color:#c62828;font-weight:600}"


def _drawable(estimate: dict | None) -> bool:
    """An estimate with a finite value and interval (a JSON round trip turns NaN into None)."""
    return bool(estimate) and all(isinstance(estimate.get(key), (int, float)) and math.isfinite(estimate[key])
                                  for key in ("value", "low", "high"))


def interval_label(name: str, group: str, estimate: dict) -> str:
    """The hover title of one estimate, e.g. `A: policy safety: 0.61 [0.52, 0.7] (95% interval)`."""
    return (f"{name} {group}: {estimate['value']:.4g} [{estimate['low']:.4g}, {estimate['high']:.4g}] "
            f"({estimate['confidence']:.0%} interval)")


def interval_chart(title: str, groups: Sequence[str], series: Sequence[tuple[str, str, Sequence[dict | None]]],
                   y_label: str = "") -> str:
    """Per group, one dot with a whisker (the interval) per series, side by side; the axis takes in 0."""
    import matplotlib

    with matplotlib.rc_context(RC):
        figure, axes = new_figure(SIZE_INCHES)
        axes.set_title(title)
        if not any(_drawable(e) for _, _, estimates in series for e in estimates):
            return empty_chart(figure, axes, title, "nothing to show")
        tooltips: dict[str, str] = {}
        offset = min(0.18, 0.8 / (len(series) + 1))
        for s, (name, color, estimates) in enumerate(series):
            labelled = False
            for g, group in enumerate(groups):
                estimate = estimates[g] if g < len(estimates) else None
                if not _drawable(estimate):
                    continue
                x = g + (s - (len(series) - 1) / 2) * offset
                value = estimate["value"]
                dot, _, (whisker,) = axes.errorbar(
                    [x], [value], yerr=[[value - estimate["low"]], [estimate["high"] - value]], fmt="o",
                    color=color, markersize=5, capsize=4, elinewidth=1.6, label=None if labelled else name)
                labelled = True
                for artist, gid in ((dot, f"estimate-{s}-{g}"), (whisker, f"interval-{s}-{g}")):
                    artist.set_gid(gid)
                    tooltips[gid] = interval_label(name, group, estimate)
        axes.axhline(0.0, color="#9aa3b2", linewidth=0.8)  # the axis always takes in 0
        axes.set_xticks(range(len(groups)), list(groups))
        axes.set_xlim(-0.5, len(groups) - 0.5)
        axes.grid(axis="x", visible=False)
        if y_label:
            axes.set_ylabel(y_label)
        axes.legend(loc="best", ncols=min(4, len(series)))
        return inline_svg(figure, title, tooltips)


def outcome_bars(title: str, outcomes: Sequence[tuple[str, dict]]) -> str:
    """One horizontal bar per row: the shares of prompts A wins, ties and loses."""
    import matplotlib
    from matplotlib.ticker import PercentFormatter

    with matplotlib.rc_context(RC):
        figure, axes = new_figure(SIZE_INCHES)
        axes.set_title(title)
        if not outcomes:
            return empty_chart(figure, axes, title, "no comparison (no baseline)")
        tooltips: dict[str, str] = {}
        rows = range(len(outcomes))
        totals = [max(counts["wins"] + counts["ties"] + counts["losses"], 1) for _, counts in outcomes]
        left = [0.0] * len(outcomes)
        for kind in ("wins", "ties", "losses"):
            shares = [counts[kind] / n for (_, counts), n in zip(outcomes, totals)]
            bars = axes.barh(rows, shares, left=left, height=0.7, color=OUTCOME_COLORS[kind], label=OUTCOME_LABELS[kind])
            for r, (bar, share) in enumerate(zip(bars, shares)):
                label, counts = outcomes[r]
                if share <= 0:
                    continue
                gid = f"{kind}-{r}"
                bar.set_gid(gid)
                tooltips[gid] = f"{label}: {kind} {counts[kind]} of {totals[r]} ({share:.1%})"
                if share >= 0.08:
                    axes.text(left[r] + share / 2, r, f"{share:.0%}", ha="center", va="center", fontsize=7,
                              color="#1d2330" if kind == "ties" else "#fff")
            left = [low + share for low, share in zip(left, shares)]
        axes.set_yticks(list(rows), [label for label, _ in outcomes])
        axes.set_ylim(len(outcomes) - 0.5, -0.5)
        axes.set_xlim(0.0, 1.0)
        axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.grid(axis="y", visible=False)
        axes.set_xlabel("share of prompts")
        axes.set_axisbelow(True)  # the grid behind the bars, not across them
        figure.legend(loc="outside lower center", ncols=3)  # below the axis: above, it would cross the title
        return inline_svg(figure, title, tooltips)


def histogram(title: str, values: Sequence[float], x_label: str, bins: int = 20) -> str:
    """Counts of `values` in equal bins over a range that takes in 0, with dashed lines at zero and
    at the mean."""
    import matplotlib
    from matplotlib.ticker import MaxNLocator

    data = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    with matplotlib.rc_context(RC):
        figure, axes = new_figure(SIZE_INCHES)
        axes.set_title(title)
        if data.size == 0:
            return empty_chart(figure, axes, title, "no paired differences (no baseline)")
        tooltips: dict[str, str] = {}
        value_range = (min(float(data.min()), 0.0), max(float(data.max()), 0.0))
        counts, edges, bars = axes.hist(data, bins=bins, range=value_range, color=PALETTE[0], alpha=0.75,
                                        edgecolor="#fff", linewidth=0.5)
        for index, (count, bar) in enumerate(zip(counts, bars)):
            if count:
                bar.set_gid(f"bin-{index}")
                tooltips[f"bin-{index}"] = f"{edges[index]:.4g} to {edges[index + 1]:.4g}: {int(count)} prompts"
        mean = float(data.mean())
        axes.axvline(0.0, color="#555", linestyle=(0, (3, 3)), linewidth=1.3, gid="zero")
        axes.axvline(mean, color=PALETTE[1], linestyle=(0, (3, 3)), linewidth=1.3, gid="mean", label=f"mean {mean:+.3g}")
        tooltips.update({"zero": "no difference", "mean": f"mean {mean:.4g}"})
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(axis="x", visible=False)
        axes.set_xlabel(x_label)
        axes.set_ylabel("prompts")
        axes.legend(loc="best")
        return inline_svg(figure, title, tooltips)


# ----------------------------------------------------------------------------- tables


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
        row = [escape(name), *(estimate_cell(summary[label]["components"][name]) for label in labels)]
        if comparison:
            c = comparison["components"][name]
            row += [estimate_cell(c["mean_difference"]), f"{c['wins']} / {c['ties']} / {c['losses']}",
                    number_cell(c["p_value"], ".3g")]
        body.append(row)
    unsafe = ["unsafe ratio", *(estimate_cell(summary[label]["unsafe_ratio"]) for label in labels)]
    if comparison:
        u = comparison["unsafe_ratio"]
        unsafe += [estimate_cell(u["difference"]), f"A worse {u['a_worse']}, B worse {u['b_worse']}",
                   number_cell(u["p_value"], ".3g")]
    body.append(unsafe)
    for key, title in (("kl", "KL to reference (nats)"), ("missing_eos_ratio", "missing EOS ratio"),
                       ("mean_length", "mean answer length (tokens)")):
        body.append([title, *(number_cell(summary[label][key]) for label in labels),
                     *([""] * (3 if comparison else 0))])
    return html_table(header, body)


def _conversation_table(result: dict) -> str:
    section = result.get("conversations")
    if not section:
        return '<p class="muted">The conversation set was not part of this evaluation.</p>'
    labels = [label for label in ("A", "B") if label in section]
    body = []
    first = section[labels[0]]
    if "red_flag_earlier" in first:
        body.append(["red flag in an earlier turn", str(first["red_flag_earlier"]["conversations"]), "unsafe ratio",
                     *(estimate_cell(section[l]["red_flag_earlier"]["unsafe_ratio"]) for l in labels)])
        body.append(["", "", "red flag caught by the guard",
                     *(number_cell(section[l]["red_flag_earlier"]["flag_caught_ratio"]) for l in labels)])
        body.append(["", "", "answer gave emergency advice",
                     *(number_cell(section[l]["red_flag_earlier"]["emergency_advice_ratio"]) for l in labels)])
    if "red_flag_denied" in first:
        body.append(["red flag denied in an earlier turn", str(first["red_flag_denied"]["conversations"]), "unsafe ratio",
                     *(estimate_cell(section[l]["red_flag_denied"]["unsafe_ratio"]) for l in labels)])
        body.append(["", "", "false alarm (flag raised anyway)",
                     *(number_cell(section[l]["red_flag_denied"]["false_alarm_ratio"]) for l in labels)])
    missed = first.get("red_flag_earlier", {}).get("missed", [])
    note = (f'<p class="muted">Red flags the guard missed in A\'s conversations: {escape(", ".join(missed))}</p>'
            if missed else "")
    return html_table(["set", "conversations", "measure", *labels], body) + note


def _agreement_section(agreement: dict | None) -> str:
    if not agreement:
        return '<p class="muted">No expert agreement in this evaluation.</p>'
    if "skipped" in agreement:
        return f'<p class="muted">Expert agreement skipped: {escape(agreement["skipped"])}</p>'
    verdict = "meets" if agreement["meets_target"] else "misses"
    status = "good" if agreement["meets_target"] else "bad"
    head = (f'<div class="cards"><div class="card {status}"><span>expert agreement '
            f'(target {agreement["target"]:g})</span><b>{number_cell(agreement["agreement"]["value"])}</b></div>'
            f'<div class="card"><span>Cohen\'s kappa</span><b>{number_cell(agreement["kappa"])}</b></div>'
            f'<div class="card"><span>agreement on decisive pairs</span>'
            f'<b>{number_cell(agreement["decisive_agreement"])}</b></div>'
            f'<div class="card"><span>records</span><b>{agreement["n"]}</b></div></div>'
            f'<p class="muted">{escape(str(agreement.get("preferences")))}: the system {verdict} the target; interval '
            f'{estimate_cell(agreement["agreement"])}. A tie matches only a tie.</p>')
    groups = []
    for key, title in (("by_source", "source"), ("by_objective", "objective"), ("by_annotator", "annotator")):
        for name, values in (agreement.get(key) or {}).items():
            groups.append([escape(title), escape(name), str(values["n"]), number_cell(values["agreement"]),
                           number_cell(values["kappa"])])
    return head + (html_table(["by", "group", "records", "agreement", "kappa"], groups) if groups else "")


def _rows_table(result: dict) -> str:
    labels = [label for label in ("A", "B") if label in (result.get("policies") or {})]
    body = []
    for row in result.get("rows", []):
        cells = [escape(row["id"]), clipped(row["question"])]
        for label in labels:
            first = row[label][0] if row.get(label) else None
            if first is None:
                cells += ["", ""]
                continue
            flag = ' class="bad"' if first["unsafe"] else ""
            cells += [f'<div class="answer">{clipped(first["response"])}</div>',
                      f'<span{flag}>{number_cell(first["total"])} {escape(first["action"])}</span>']
        if "difference" in row:
            cells.append(number_cell(row["difference"], "+.3f"))
        body.append(cells)
    header = ["id", "question"] + [h for label in labels for h in (f"{label} answer (first sample)", f"{label} total")]
    if len(labels) == 2:
        header.append("A − B")
    return html_table(header, body)


def render_evaluation(result: dict) -> str:
    """The page for an `evaluate_policies` result."""
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
        headline = (f'<p>A wins {total["win_rate"]["value"]:.1%} of prompts [{number_cell(total["win_rate"]["low"])}, '
                    f'{number_cell(total["win_rate"]["high"])}], ties {total["tie_rate"]:.1%}; mean difference '
                    f'{estimate_cell(total["mean_difference"])}; {escape(total["test"])} '
                    f'p = {number_cell(total["p_value"], ".3g")}.</p>')
    subtitle = (f"model {result.get('model')} · {result.get('prompts', {}).get('evaluated', 0)} prompts + "
                f"{result.get('prompts', {}).get('conversations', 0)} conversations · "
                f"{settings.get('samples_per_prompt')} answer(s) per prompt · seed {settings.get('seed')} · "
                f"{settings.get('confidence_level', 0):.0%} percentile-bootstrap intervals "
                f"({settings.get('bootstrap_resamples')} resamples) · generated {result.get('created')}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}{EXTRA_STYLE}'
        f"</style></head><body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p>"
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
