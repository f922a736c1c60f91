"""The run report's charts (matplotlib rendering inline SVG): well-formed, labelled, with tooltips."""

from __future__ import annotations

import math
import re
from xml.etree import ElementTree

from clinical_rlhf.monitoring.plots import EMPTY_MESSAGE, Chart, Line, Marker, line_chart, timeline

SVG = "{http://www.w3.org/2000/svg}"


def _paths_of(svg: str, gid: str) -> list[str]:
    group = next(g for g in ElementTree.fromstring(svg).iter(f"{SVG}g") if g.get("id") == gid)
    return [path.get("d") for path in group.iter(f"{SVG}path")]


def test_a_line_chart_is_inline_svg_with_labels_thresholds_and_tooltips():
    chart = Chart("Unsafe ratio", [Line("unsafe_ratio", [1, 2, 3, 4, 5], [0.4, 0.3, math.nan, 0.2, 0.1])],
                  "ratio", thresholds=[Marker(0.25, "max 0.25", "#d62728")],
                  events=[Marker(3, "rollback: restored iter 2", "#ff7f0e")], x_range=(1, 5))
    svg = line_chart(chart)
    assert svg.startswith('<svg class="chart" role="img" aria-label="Unsafe ratio"') and "<?xml" not in svg
    ElementTree.fromstring(svg)  # well-formed on its own, as it sits inside the HTML page
    for text in ("Unsafe ratio", "unsafe_ratio", "max 0.25", "step", "ratio"):
        assert f">{text}</text>" in svg, text  # text kept as text (svg.fonttype none), not glyph paths
    assert "<title>unsafe_ratio</title>" in svg and "<title>rollback: restored iter 2</title>" in svg
    # the NaN at step 3 breaks the line: two segments, each starting with a move-to
    [line] = [d for d in _paths_of(svg, "series-0") if d and d.lstrip().startswith("M")][:1]
    assert len(re.findall(r"\bM\b", line)) == 2
    assert line_chart(chart) == svg  # deterministic: the same run gives the same report


def test_nothing_drawable_says_so_and_a_log_axis_skips_non_positive_values():
    empty = line_chart(Chart("Drift: CUSUM", [Line("reward", [1, 2], [None, math.inf])]))
    assert f">{EMPTY_MESSAGE}</text>" in empty
    log = line_chart(Chart("KS p-value", [Line("p", [1, 2, 3], [0.5, 0.0, 1e-4])], log_y=True,
                           thresholds=[Marker(0.0, "never drawn"), Marker(0.05, "α 0.05")]))
    ElementTree.fromstring(log)
    assert EMPTY_MESSAGE not in log and "never drawn" not in log and ">α 0.05</text>" in log


def test_the_timeline_puts_each_event_in_its_lane_with_its_message():
    events = [{"kind": "run_start", "step": 0}, {"kind": "alert", "step": 4, "severity": "warning",
                                                  "message": "reward_drift fired"},
              {"kind": "emergency_stop", "step": 9, "severity": "critical", "message": "unsafe ratio 0.7"}]
    svg = timeline(events, 0, 10)
    ElementTree.fromstring(svg)
    assert svg.startswith('<svg class="chart wide"')
    for lane in ("emergency stop", "rollback", "alert", "early stop epoch", "checkpoint", "other"):
        assert f">{lane}</text>" in svg
    assert svg.count("<title>") == 2  # run_start is not an event worth a marker
    assert "<title>step 9: [critical] unsafe ratio 0.7</title>" in svg
