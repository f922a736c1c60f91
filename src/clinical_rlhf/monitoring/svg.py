"""SVG primitives (ticks, text, lines) for the evaluation page's interval and outcome charts
(`evaluation/html.py`). The run report's line charts and timeline are drawn by matplotlib
(`monitoring/plots.py`).
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 34, 34


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
