"""Cells and tables shared by the evaluation pages (`html.py`, `judge_html.py`,
`safety_case_html.py`): numbers, estimates with their interval, clipped texts, plain tables.

They live apart from `html.py` so that the page and the sections it includes import them
without importing each other."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

MAX_TEXT = 400
"""Characters of a question or answer shown in the per-prompt table (the JSON has all of it)."""


def number_cell(value, digits: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, digits)
    return escape(str(value))


def estimate_cell(estimate: dict | None) -> str:
    if not estimate:
        return "—"
    interval = f"[{number_cell(estimate['low'])}, {number_cell(estimate['high'])}]"
    return f'{number_cell(estimate["value"])} <span class="muted">{interval}</span>'


def clipped(text: str) -> str:
    return escape(text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …")


def html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{rows}</table>"
