"""Reading a training run's audit log with each iteration counted once.

A run that crashed after iteration `m` and resumed from a checkpoint at `k < m` audits
iterations `k+1..m` twice. The log is append-only, so the first copies stay; the trainer writes
a `resumed_from` record (`details.iteration = k`) when it resumes, and every record before it
whose `details.iteration` is after `k` is superseded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def current_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` (in log order) without those superseded by a later `resumed_from` record."""
    kept: list[dict[str, Any]] = []
    for record in records:
        if record.get("event") == "resumed_from":
            resumed = _iteration(record)
            if resumed is not None:
                kept = [r for r in kept if (_iteration(r) or 0) <= resumed or r.get("event") == "resumed_from"]
        kept.append(record)
    return kept


def read_current_records(path: Path | str) -> list[dict[str, Any]]:
    """The records of an audit log file (verify it first) with superseded ones left out."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return current_records(json.loads(line) for line in lines if line.strip())


def _iteration(record: dict[str, Any]) -> int | None:
    details = record.get("details")
    value = details.get("iteration") if isinstance(details, dict) else None
    return value if type(value) is int else None
