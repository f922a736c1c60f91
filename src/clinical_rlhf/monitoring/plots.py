"""The run report's charts, drawn by matplotlib as inline SVG, and the helpers the evaluation
page's charts (`evaluation/html.py`) share with them: `new_figure`, `inline_svg`, `empty_chart`.

matplotlib rather than our own SVG: axis scaling, tick placement, log axes, legends and line
breaks at NaN are its job and well tested there. It renders each chart as a standalone SVG
(object-oriented `Figure` API, never `pyplot`, so no global state and no display is touched);
the XML prologue is cut and the root tagged `class="chart"` so the page's CSS scales it, which
keeps the report one self-contained HTML file. Text stays text (`svg.fonttype: none`), so the
file stays small and the titles, legends and threshold labels remain searchable.

Hover tooltips: each series, threshold and event is drawn with a `gid`, and a `<title>` naming it
(and, for events, its message) is put into that group, as the hand-drawn charts had.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
SIZE_INCHES = (5.6, 2.6)
"""One chart; two fit side by side in the report's grid and scale with the page."""
TIMELINE_SIZE_INCHES = (11.2, 2.7)
EMPTY_MESSAGE = "not recorded in this run"
LANES = ("emergency_stop", "rollback", "alert", "early_stop_epoch", "checkpoint", "other")
SEVERITY_COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
RC = {"svg.fonttype": "none", "svg.hashsalt": "clinical-rlhf", "font.size": 8, "axes.titlesize": 9.5,
      "axes.titleweight": "bold", "axes.titlelocation": "left", "axes.spines.top": False,
      "axes.spines.right": False, "axes.grid": True, "grid.color": "#eceff4", "legend.fontsize": 7.5,
      "legend.frameon": False}
"""`svg.hashsalt` makes the clip-path ids deterministic, so the same run gives the same report."""


@dataclass(frozen=True)
class Line:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Marker:
    """A vertical line at a step (rollback, emergency stop) or a horizontal one at a value."""

    at: float
    label: str
    color: str = "#555"


@dataclass(frozen=True)
class Chart:
    title: str
    lines: Sequence[Line]
    y_label: str = ""
    thresholds: Sequence[Marker] = field(default_factory=tuple)
    events: Sequence[Marker] = field(default_factory=tuple)
    log_y: bool = False
    x_range: tuple[float, float] | None = None
    """Shared step axis, so that charts of one report line up; None fits the data."""


def _finite(value: float | None, log_y: bool = False) -> bool:
    return value is not None and math.isfinite(value) and (value > 0 or not log_y)


def _nan_broken(values: Sequence[float | None], log_y: bool) -> list[float]:
    """None, inf and (on a log axis) non-positive values as NaN, where matplotlib breaks the line."""
    return [float(v) if _finite(v, log_y) else math.nan for v in values]


def new_figure(size: tuple[float, float]):
    from matplotlib.figure import Figure  # imported here: only the report needs matplotlib

    figure = Figure(figsize=size, dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def inline_svg(figure, title: str, tooltips: dict[str, str], cls: str = "chart") -> str:
    """The figure as an inline `<svg>` element: no XML prologue, the page's class and label on the
    root, and a `<title>` in each group named in `tooltips` (gid -> text)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context(RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = svg.replace("<svg ", f'<svg class="{cls}" role="img" aria-label="{escape(title)}" ', 1)
    for gid, text in tooltips.items():
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{escape(text)}</title>', 1)
    return svg


def empty_chart(figure, axes, title: str, message: str) -> str:
    """A titled chart with no axes and `message` in its middle, for data that was not recorded."""
    axes.set_axis_off()
    axes.text(0.5, 0.5, message, ha="center", va="center", color="#8a93a3", transform=axes.transAxes)
    return inline_svg(figure, title, {})


def line_chart(chart: Chart) -> str:
    """A line chart over steps: NaN values break a line, thresholds are dashed horizontal lines
    labelled at the right, events dashed vertical ones."""
    import matplotlib

    with matplotlib.rc_context(RC):
        figure, axes = new_figure(SIZE_INCHES)
        axes.set_title(chart.title)
        axes.set_xlabel("step")
        if chart.y_label:
            axes.set_ylabel(chart.y_label)
        tooltips: dict[str, str] = {}
        drawable = [line for line in chart.lines if any(_finite(y, chart.log_y) for y in line.ys)]
        if not drawable:
            return empty_chart(figure, axes, chart.title, EMPTY_MESSAGE)
        if chart.log_y:
            axes.set_yscale("log")
        for index, line in enumerate(chart.lines):
            gid = f"series-{index}"
            ys = _nan_broken(line.ys, chart.log_y)
            points = sum(1 for y in ys if not math.isnan(y))
            axes.plot(list(line.xs), ys, color=line.color or PALETTE[index % len(PALETTE)], linewidth=1.6,
                      linestyle="--" if line.dashed else "-", marker="o" if points <= 60 else None, markersize=2.4,
                      label=line.name, gid=gid)
            tooltips[gid] = line.name
        for index, marker in enumerate(chart.thresholds):
            if not _finite(marker.at, chart.log_y):
                continue
            gid = f"threshold-{index}"
            axes.axhline(marker.at, color=marker.color, linestyle=(0, (6, 4)), linewidth=1.1, gid=gid)
            axes.annotate(marker.label, (1, marker.at), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                          textcoords="offset points", ha="right", va="bottom", color=marker.color, fontsize=7)
            tooltips[gid] = marker.label
        for index, marker in enumerate(chart.events):
            gid = f"event-{index}"
            axes.axvline(marker.at, color=marker.color, linestyle=(0, (3, 3)), linewidth=1.3, gid=gid)
            tooltips[gid] = marker.label
        if chart.x_range is not None:
            low, high = chart.x_range
            axes.set_xlim(low - 0.5, high + 0.5) if high <= low else axes.set_xlim(low, high)
        axes.legend(loc="best", ncols=min(4, len(chart.lines)))
        return inline_svg(figure, chart.title, tooltips)


def timeline(events: Sequence[dict], x_low: float, x_high: float) -> str:
    """One lane per event kind; a marker per event, coloured by severity, with its message as the
    tooltip (stops and rollbacks as diamonds, the rest as dots; critical drawn on top)."""
    import matplotlib

    title = "Alerts, rollbacks and stops"
    with matplotlib.rc_context(RC):
        figure, axes = new_figure(TIMELINE_SIZE_INCHES)
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.set_yticks(range(len(LANES)), [lane.replace("_", " ") for lane in LANES])
        axes.set_ylim(len(LANES) - 0.5, -0.5)
        axes.grid(axis="x", visible=False)
        axes.set_xlim(x_low - 0.5, x_high + 0.5) if x_high <= x_low else axes.set_xlim(x_low, x_high)
        severity_rank = {"info": 0, "warning": 1, "critical": 2}
        tooltips: dict[str, str] = {}
        shown = [e for e in events if str(e.get("kind", "other")) not in ("run_start", "run_end")]
        for index, event in enumerate(sorted(shown, key=lambda e: severity_rank.get(str(e.get("severity")), 0))):
            kind = str(event.get("kind", "other"))
            lane = LANES.index(kind) if kind in LANES else LANES.index("other")
            gid = f"mark-{index}"
            axes.scatter([float(event.get("step", 0))], [lane], s=34, marker="D" if lane < 2 else "o",
                         color=SEVERITY_COLORS.get(str(event.get("severity")), "#555"), alpha=0.85,
                         zorder=3 + severity_rank.get(str(event.get("severity")), 0), gid=gid)
            tooltips[gid] = f"step {event.get('step')}: [{event.get('severity')}] {event.get('message', '')}"
        return inline_svg(figure, title, tooltips, "chart wide")

