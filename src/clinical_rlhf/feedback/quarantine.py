"""Clinicians' corrections the safety guard rejected: kept for review, never trained on.

A correction posted to `POST /v1/feedback` is checked by the guard with the question the served
answer was checked against. One the guard rejects ("Yes, that's fine" to "is 2 g of paracetamol
every 4 hours ok?") is not a clean preference pair: it goes to the quarantine file, one JSON object
a line, never to the preference file that reward-model and DPO training read:

    {"id": "quarantine-...", "status": "quarantined", "completion_id": "chatcmpl-...",
     "prompt": "...", "messages": [...], "corrected_answer": "...", "served_answer": "...",
     "annotator": "dr-okafor", "rationale": "...", "objectives": {"safety": "corrected"},
     "verdict": {"action": "reject", "reason_code": "dosage", "flags": [{"category": ..., "rule_id": ...}]},
     "created": "2026-12-07T14:00:00Z"}

A reviewer who decides the clinician was right (a rule can be wrong) re-submits the pair through the
preference format by hand, after the rule has been looked at. A quarantine line given to the
preference reader is refused with a message that says what it is; a preference record that an older
server wrote with `source: "feedback_guard_rejected"` is skipped by `load_preferences` (logged).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_rlhf.durable import append_jsonl
from clinical_rlhf.errors import InputDataError

QUARANTINE_SOURCE = "feedback_guard_rejected"
"""`source` of the corrections older servers wrote into the preference file although the guard had
rejected them; `load_preferences` skips such records."""
QUARANTINED = "quarantined"
"""`status` of every quarantine line: what tells the preference reader it is not a pair."""


@dataclass(frozen=True, slots=True)
class QuarantinedCorrection:
    """One rejected correction with what the guard said about it."""

    id: str
    completion_id: str
    prompt: str
    corrected_answer: str
    served_answer: str
    annotator: str
    verdict: Mapping[str, Any]
    """The guard's verdict on the correction: action, reason code, flags (no evidence text)."""
    created: str
    messages: tuple[Mapping[str, str], ...] = ()
    rationale: str | None = None
    objectives: Mapping[str, str] = field(default_factory=dict)
    """Per objective, as the clinician sent it: `corrected`, `served` or `tie`."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": QUARANTINED, "completion_id": self.completion_id, "prompt": self.prompt,
                "messages": [dict(turn) for turn in self.messages], "corrected_answer": self.corrected_answer,
                "served_answer": self.served_answer, "annotator": self.annotator, "rationale": self.rationale,
                "objectives": dict(self.objectives), "verdict": dict(self.verdict), "created": self.created}


def append_quarantined(path: str | Path, record: QuarantinedCorrection, *, fsync: bool = True) -> None:
    """Append one record as one whole line under an exclusive lock (as `append_preference`)."""
    append_jsonl(path, record.to_dict(), fsync=fsync)


def read_quarantine(path: str | Path) -> list[dict[str, Any]]:
    """Every quarantined correction of `path`, for review. A line that is not a quarantine record
    raises one `InputDataError` naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputDataError(f"{path}: quarantine file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the quarantine file ({exc})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{path}:{number}: not valid JSON ({exc.msg}); a torn last line from a crash "
                                 f"can be deleted") from None
        if not isinstance(record, dict) or record.get("status") != QUARANTINED:
            raise InputDataError(f"{path}:{number}: not a quarantined correction (each line has "
                                 f'"status": "{QUARANTINED}")')
        records.append(record)
    return records
