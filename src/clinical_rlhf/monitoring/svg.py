"""Inline SVG charts for the run report: line charts over training steps and an event timeline.

Hand-written so that the report is one self-contained HTML file with no plotting dependency;
charts scale with the page and carry `<title>` tooltips on points and events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 34, 34


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


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _text(x: float, y: float, content: str, cls: str, anchor: str = "start", fill: str | None = None) -> str:
    colour = f' fill="{fill}"' if fill else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}"{colour}>'
            f"{escape(content)}</text>")


def _line(x1: float, y1: float, x2: float, y2: float, cls: str, stroke: str | None = None,
          title: str | None = None) -> str:
    colour = f' stroke="{stroke}"' if stroke else ""
    inner = f"<title>{escape(title)}</title></line>" if title else "</line>"
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{cls}"{colour}>{inner}'


def _open_svg(width: float, height: float, title: str, cls: str = "chart") -> str:
    return (f'<svg class="{cls}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg">{_text(LEFT if cls == "chart" else 12, 18, title, "title")}')


def line_chart(chart: Chart) -> str:
    """An SVG line chart over steps; NaN values break a line, thresholds are dashed
    horizontal lines, events dashed vertical ones."""
    transform = (lambda v: math.log10(v) if v > 0 else math.nan) if chart.log_y else (lambda v: v)
    data = _finite([transform(y) for line in chart.lines for y in _finite(line.ys)])
    header = _open_svg(WIDTH, HEIGHT, chart.title)
    if not data:
        return header + _text(WIDTH / 2, HEIGHT / 2, "not recorded in this run", "empty", "middle") + "</svg>"
    xs = [x for line in chart.lines for x, y in zip(line.xs, line.ys) if _finite([y])]
    xs += [m.at for m in chart.events]
    ys = data + [transform(m.at) for m in chart.thresholds if m.at > 0 or not chart.log_y]
    x_low, x_high = chart.x_range or (min(xs), max(xs))
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    y_ticks = nice_ticks(min(ys), max(ys))
    y_low, y_high = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom, right = TOP + plot_h, WIDTH - RIGHT

    def px(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def py(y: float) -> float:
        return bottom - (transform(y) - y_low) / (y_high - y_low) * plot_h

    parts = [header]
    for tick in y_ticks:
        y = bottom - (tick - y_low) / (y_high - y_low) * plot_h
        label = _fmt(10 ** tick) if chart.log_y else _fmt(tick)
        parts.append(_line(LEFT, y, right, y, "grid") + _text(LEFT - 6, y + 4, label, "tick", "end"))
    for tick in nice_ticks(x_low, x_high, 6):
        if x_low <= tick <= x_high:
            x = px(tick)
            parts.append(_line(x, bottom, x, bottom + 4, "axis")
                         + _text(x, bottom + 16, _fmt(tick), "tick", "middle"))
    parts.append(_line(LEFT, bottom, right, bottom, "axis")
                 + _text(LEFT + plot_w / 2, HEIGHT - 4, "step", "label", "middle"))
    if chart.y_label:
        parts.append(f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" class="label" '
                     f'text-anchor="middle">{escape(chart.y_label)}</text>')
    for marker in chart.thresholds:
        if chart.log_y and marker.at <= 0:
            continue
        y = py(marker.at)
        parts.append(_line(LEFT, y, right, y, "threshold", marker.color, marker.label)
                     + _text(right - 2, y - 3, marker.label, "tick", "end", marker.color))
    for marker in chart.events:
        x = px(marker.at)
        parts.append(_line(x, TOP, x, bottom, "event", marker.color, marker.label))
    for index, line in enumerate(chart.lines):
        color = line.color or PALETTE[index % len(PALETTE)]
        parts.append(_polyline(line, color, px, py, transform))
    parts.append(_legend(chart.lines))
    parts.append("</svg>")
    return "".join(parts)


def _polyline(line: Line, color: str, px, py, transform) -> str:
    segments: list[list[tuple[float, float]]] = [[]]
    points = []
    for x, y in zip(line.xs, line.ys):
        if y is None or not math.isfinite(y) or not math.isfinite(transform(y)):
            segments.append([])
            continue
        segments[-1].append((px(x), py(y)))
        points.append((x, y))
    dash = ' stroke-dasharray="5 3"' if line.dashed else ""
    out = []
    for segment in segments:
        if len(segment) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
            out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" '
                       f'stroke-width="1.8"{dash}/>')
    if len(points) <= 60:  # dots with tooltips while they stay readable
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.4" fill="{color}">'
                       f"<title>{escape(line.name)} @ step {_fmt(x)}: {y:.6g}</title></circle>")
    return "".join(out)


def _legend(lines: Sequence[Line]) -> str:
    parts, x = [], LEFT
    for index, line in enumerate(lines):
        color = line.color or PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{TOP - 11}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{x + 13}" y="{TOP - 7}" class="legend">{escape(line.name)}</text>')
        x += 22 + 6.2 * len(line.name)
    return "".join(parts)


LANES = ("emergency_stop", "rollback", "alert", "early_stop_epoch", "checkpoint", "other")
SEVERITY_COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}


def timeline(events: Sequence[dict], x_low: float, x_high: float) -> str:
    """One lane per event kind; a marker per event, colored by severity, with its message
    (stops and rollbacks as diamonds, the rest as dots)."""
    lane_h, top, left, width = 24, 30, 140, WIDTH * 2
    height = top + lane_h * len(LANES) + 28
    if x_high <= x_low:
        x_low, x_high = x_low - 1, x_high + 1
    plot_w = width - left - RIGHT

    def px(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def lane_y(lane: int) -> float:
        return top + lane * lane_h + lane_h / 2

    parts = [_open_svg(width, height, "Alerts, rollbacks and stops", "chart wide")]
    for index, lane in enumerate(LANES):
        y = lane_y(index)
        parts.append(_line(left, y, width - RIGHT, y, "grid")
                     + _text(left - 8, y + 4, lane.replace("_", " "), "tick", "end"))
    axis_y = top + lane_h * len(LANES)
    for tick in nice_ticks(x_low, x_high, 10):
        if x_low <= tick <= x_high:
            parts.append(_text(px(tick), axis_y + 14, _fmt(tick), "tick", "middle"))
    parts.append(_text(left + plot_w / 2, height - 2, "step", "label", "middle"))
    severity_rank = {"info": 0, "warning": 1, "critical": 2}
    for event in sorted(events, key=lambda e: severity_rank.get(str(e.get("severity")), 0)):  # critical on top
        kind = str(event.get("kind", "other"))
        if kind in ("run_start", "run_end"):
            continue
        lane = LANES.index(kind) if kind in LANES else LANES.index("other")
        color = SEVERITY_COLORS.get(str(event.get("severity")), "#555")
        x, y = px(float(event.get("step", 0))), lane_y(lane)
        summary = f"step {event.get('step')}: [{event.get('severity')}] {event.get('message', '')}"
        title = f"<title>{escape(summary)}</title>"
        if lane < 2:
            parts.append(f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{color}" '
                         f'transform="rotate(45 {x:.1f} {y:.1f})">{title}</rect>')
        else:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}" fill-opacity="0.8">'
                         f"{title}</circle>")
    parts.append("</svg>")
    return "".join(parts)
