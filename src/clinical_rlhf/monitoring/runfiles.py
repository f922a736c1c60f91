"""The files a run writes for monitoring, and reading them back.

    runs/<name>/metrics.jsonl   {"step": int, "time": iso, "metrics": {key: float | null}} per iteration;
                                {"step": k, "time": iso, "resumed_from": k, "checkpoint": name} where a run
                                resumed from step k: earlier rows of steps after k are superseded
    runs/<name>/events.jsonl    {"step", "time", "kind", "severity", "message", ...details}
    runs/<name>/evaluation.json {"before": {metric: value}, "after": {...}} (written by the trainer)
    runs/<name>/config.yaml     the resolved config (written by `RunTracker.log_params`)

A non-finite metric value (NaN, inf) is written as `null`, so every line is strict JSON that any
tool can load (`pandas.read_json(path, lines=True)`); readers treat `null` as NaN.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from clinical_rlhf.errors import InputDataError

METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
EVALUATION_FILE = "evaluation.json"
CONFIG_FILE = "config.yaml"
AUDIT_FILE = "audit.jsonl"
REPORT_FILE = "report.html"


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def json_safe(value: Any) -> Any:
    """Non-finite floats -> None, recursively through dicts and lists; other values as they are."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def append_jsonl(handle: TextIO, record: dict[str, Any]) -> None:
    """Write one strict-JSON line and flush it, so a crash loses at most the line being written."""
    handle.write(json.dumps(json_safe(record), allow_nan=False, default=str) + "\n")
    handle.flush()


def read_jsonl(path: Path, *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """All records of a JSONL file. A torn last line (the process died mid-write) is skipped; any
    other malformed line raises InputDataError naming the file and line."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise InputDataError(f"{path} does not exist; is this a run directory?")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break  # torn tail
            raise InputDataError(f"{path}, line {number}: not valid JSON ({exc.msg}); "
                                 f"fix or delete that line") from None
        if not isinstance(record, dict):
            raise InputDataError(f"{path}, line {number}: expected a JSON object, got "
                                 f"{type(record).__name__}")
        records.append(record)
    return records


def append_resume_mark(run_dir: Path, step: int, checkpoint: str) -> None:
    """Mark in metrics.jsonl that the run resumed from `step`: rows of later steps above the
    mark belong to iterations run again after it. (An O_APPEND write, flushed: it lands between
    the tracker's own flushed lines.)"""
    with (Path(run_dir) / METRICS_FILE).open("a", encoding="utf-8") as handle:
        append_jsonl(handle, {"step": int(step), "time": utc_now_iso(), "resumed_from": int(step),
                              "checkpoint": checkpoint})


def read_metrics(run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    """(step, metrics) per iteration, sorted by step, each iteration once: a `resumed_from`
    mark drops the rows of later steps written before it, and when a step repeats otherwise
    its last record wins. `null` values come back as NaN."""
    path = Path(run_dir) / METRICS_FILE
    by_step: dict[int, dict[str, float]] = {}
    for number, record in enumerate(read_jsonl(path), start=1):
        if "resumed_from" in record:
            resumed = record["resumed_from"]
            if type(resumed) is not int:
                raise InputDataError(f"{path}, record {number}: `resumed_from` must be a step number")
            by_step = {step: values for step, values in by_step.items() if step <= resumed}
            continue
        try:
            step = int(record["step"])
            values = {key: math.nan if value is None else float(value)
                      for key, value in dict(record["metrics"]).items()}
        except (KeyError, TypeError, ValueError):
            raise InputDataError(f"{path}, record {number}: expected "
                                 f'{{"step": int, "time": ..., "metrics": {{key: number}}}}') from None
        by_step[step] = values
    return sorted(by_step.items())


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Events in order; a `resumed_from` event drops the events of later steps before it (alerts,
    rollbacks of iterations run again), but never a run's start or end (a crash stays visible)."""
    events: list[dict[str, Any]] = []
    for record in read_jsonl(Path(run_dir) / EVENTS_FILE):
        resumed = record.get("step")
        if record.get("kind") == "resumed_from" and type(resumed) is int:
            events = [event for event in events if event.get("kind") in ("run_start", "run_end")
                      or not isinstance(event.get("step"), int) or event["step"] <= resumed]
        events.append(record)
    return events


def read_evaluation(run_dir: Path) -> dict[str, dict[str, float]]:
    """`{"before": {...}, "after": {...}}`, or {} when the run has no evaluation yet."""
    path = Path(run_dir) / EVALUATION_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputDataError(f'{path}: expected {{"before": {{...}}, "after": {{...}}}}')
    return {phase: dict(values) for phase, values in data.items() if isinstance(values, dict)}


def audit_anchor_of(checkpoint: Path) -> dict[str, Any] | None:
    """The audit anchor `{"count", "head_hash"}` in a checkpoint's manifest.json, or None (no
    audit log, or a checkpoint written before anchoring)."""
    try:
        anchor = json.loads((Path(checkpoint) / "manifest.json").read_text(encoding="utf-8")).get("audit")
    except (OSError, ValueError, AttributeError):
        return None
    return anchor if isinstance(anchor, dict) and {"count", "head_hash"} <= anchor.keys() else None


def flatten_evaluation(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested evaluation results ({"components": {"safety": ...}}) as "components/safety"."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_evaluation(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def evaluation_metrics(run_dir: Path) -> dict[str, float]:
    """evaluation.json's numbers as `heldout/<before|after>/<name>` metric keys, e.g.
    `heldout/after/components/safety` ({} when the run has no evaluation)."""
    metrics: dict[str, float] = {}
    for phase, values in read_evaluation(run_dir).items():
        for name, value in flatten_evaluation(values).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"heldout/{phase}/{name}"] = float(value)
    return metrics


def last_checkpoint(run_dir: Path) -> str | None:
    """The path of the last checkpoint the run's events.jsonl records, or None."""
    paths = [event["path"] for event in read_events(run_dir) if event.get("kind") == "checkpoint" and event.get("path")]
    return str(paths[-1]) if paths else None
