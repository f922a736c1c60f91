"""The evaluation page's four charts: matplotlib's inline SVG, each with its title and its data."""

from __future__ import annotations

import math
import re
from xml.etree import ElementTree

from clinical_rlhf.evaluation.html import histogram, interval_chart, outcome_bars, render_evaluation

COMPONENTS = ("safety", "total")


def _estimate(value: float, low: float, high: float) -> dict:
    return {"value": value, "low": low, "high": high, "confidence": 0.95, "n": 4}


def _result() -> dict:
    summary = {
        "A": {"components": {"safety": _estimate(0.61, 0.52, 0.7), "total": _estimate(0.4, 0.25, 0.55)},
              "unsafe_ratio": _estimate(0.25, 0.0, 0.5), "kl": 0.12, "missing_eos_ratio": 0.0, "mean_length": 30.0},
        "B": {"components": {"safety": _estimate(0.5, 0.41, 0.59), "total": _estimate(-0.1, -0.3, 0.1)},
              "unsafe_ratio": _estimate(0.5, 0.25, 0.75), "kl": 0.0, "missing_eos_ratio": 0.0, "mean_length": 28.0},
    }
    outcome = {"wins": 3, "ties": 0, "losses": 1, "mean_difference": _estimate(0.5, 0.1, 0.9), "p_value": 0.2}
    comparison = {"components": {"safety": {**outcome, "wins": 2, "ties": 1}, "total": outcome},
                  "unsafe_ratio": {"difference": _estimate(-0.25, -0.5, 0.0), "a_worse": 0, "b_worse": 1,
                                   "p_value": 0.5},
                  "total": {**outcome, "test": "sign-flip permutation", "win_rate": _estimate(0.75, 0.5, 1.0),
                            "tie_rate": 0.0}}
    rows = [{"id": f"p{i}", "question": "chest pain?", "source": "heldout", "difference": d,
             "A": [{"response": "call 911", "total": 1.0, "unsafe": False, "action": "allow"}],
             "B": [{"response": "rest", "total": 0.5, "unsafe": True, "action": "veto"}]}
            for i, d in enumerate((0.75, 0.5, 1.25, -0.5))]
    return {"policies": {"A": {"name": "iter-2"}, "B": {"name": "reference"}}, "summary": summary,
            "comparison": comparison, "rows": rows, "model": "tiny", "created": "2026-12-07",
            "prompts": {"evaluated": 4, "conversations": 0},
            "settings": {"samples_per_prompt": 1, "seed": 0, "confidence_level": 0.95, "bootstrap_resamples": 200,
                         "tie_epsilon": 1e-6}}


def _charts(page: str) -> dict[str, str]:
    """Each inline chart by its accessible title."""
    charts = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    for chart in charts:
        ElementTree.fromstring(chart)  # well-formed on its own, as it sits inside the page
    return {re.search(r'aria-label="([^"]*)"', chart).group(1): chart for chart in charts}


def test_each_chart_is_present_with_its_title_and_its_data():
    page = render_evaluation(_result())
    assert "<script" not in page and "src=" not in page and "<?xml" not in page
    charts = _charts(page)
    assert list(charts) == ["Reward components: mean and interval", "Unsafe (vetoed) answer ratio",
                            "A vs B per prompt: wins, ties, losses", "Paired differences of the total (A − B)"]
    for title, chart in charts.items():
        assert chart.startswith('<svg class="chart" role="img"') and f">{title}</text>" in chart  # text as text
    components = charts["Reward components: mean and interval"]
    for text in (">safety</text>", ">total</text>", ">A: iter-2</text>", ">B: reference</text>",
                 "<title>A: iter-2 safety: 0.61 [0.52, 0.7] (95% interval)</title>",
                 "<title>B: reference total: -0.1 [-0.3, 0.1] (95% interval)</title>"):
        assert text in components, text
    assert components.count("<title>") == 2 * 4  # a dot and a whisker per estimate
    unsafe = charts["Unsafe (vetoed) answer ratio"]
    assert "<title>A: iter-2 held-out: 0.25 [0, 0.5] (95% interval)</title>" in unsafe
    assert "<title>B: reference held-out: 0.5 [0.25, 0.75] (95% interval)</title>" in unsafe
    outcomes = charts["A vs B per prompt: wins, ties, losses"]
    for text in ("<title>safety: wins 2 of 4 (50.0%)</title>", "<title>safety: ties 1 of 4 (25.0%)</title>",
                 "<title>total: losses 1 of 4 (25.0%)</title>", ">A wins</text>", ">B wins</text>", ">75%</text>"):
        assert text in outcomes, text
    assert "total: ties" not in outcomes  # an empty share draws nothing
    differences = charts["Paired differences of the total (A − B)"]
    assert "<title>mean 0.5</title>" in differences and ">mean +0.5</text>" in differences
    assert "<title>no difference</title>" in differences and ">reward difference per prompt</text>" in differences
    bins = re.findall(r"<title>(\S+) to (\S+): (\d+) prompts</title>", differences)
    assert sum(int(count) for *_, count in bins) == 4 and float(bins[0][0]) == -0.5
    assert render_evaluation(_result()) == page  # deterministic: the same result gives the same page


def test_charts_without_data_say_why():
    for chart, message in ((interval_chart("Means", ["safety"], [("A", "#000", [None])]), "nothing to show"),
                           (outcome_bars("Outcomes", []), "no comparison (no baseline)"),
                           (histogram("Differences", [math.nan, None], "difference"),
                            "no paired differences (no baseline)")):
        ElementTree.fromstring(chart)
        assert f">{message}</text>" in chart and "<title>" not in chart
