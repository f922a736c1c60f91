"""Expert preference judgements: the JSONL format clinicians' comparisons are stored in.

One JSON object per line:

    {"id": "pref-000123",                      # unique within the file
     "prompt": "Can I take ibuprofen with warfarin?",
     "answer_a": "...", "answer_b": "...",
     "preferred": "a",                          # "a", "b" or "tie"
     "annotator": "dr-okafor",                  # who judged (an id, not a name, if PHI matters)
     "rationale": "B okays a bleeding risk",    # optional free text
     "objectives": {"safety": "a", "guidelines": "tie"},   # optional, per reward objective
     "messages": [{"role": "user", "content": "..."}, ...],  # optional earlier turns
     "source": "corpus",                        # optional: corpus, feedback, import, ...
     "completion_id": "chatcmpl-...",           # optional: the served completion judged
     "created": "2026-11-25T10:00:00Z"}         # optional UTC time

`prompt` is the question the two answers reply to (the last user turn when `messages` is given:
`messages` are the turns before it). A tie is kept: agreement statistics count it, while
Bradley-Terry and DPO training skip it (they need a winner). Reading validates every line and
reports all bad lines at once, with file and line number, so a clinician's file is fixed in one
pass and nothing is silently dropped. Appending takes an exclusive file lock and writes whole
lines, so a server's workers can record feedback into the same file.

This module imports no torch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from clinical_rlhf.durable import append_jsonl
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.feedback.quarantine import QUARANTINE_SOURCE, QUARANTINED

logger = logging.getLogger(__name__)

Choice = Literal["a", "b", "tie"]
CHOICES: tuple[str, ...] = get_args(Choice)
OBJECTIVES: tuple[str, ...] = ("safety", "guidelines", "uncertainty", "coherence")
ROLES: tuple[str, ...] = ("system", "user", "assistant")
MAX_ERRORS_SHOWN = 10

_REQUIRED = ("id", "prompt", "answer_a", "answer_b", "preferred", "annotator")
_OPTIONAL = ("rationale", "objectives", "messages", "source", "completion_id", "created")
_FORMAT_HINT = ('each line is a JSON object with "id", "prompt", "answer_a", "answer_b", '
                '"preferred" ("a", "b" or "tie") and "annotator"; see docs/feedback.md')


@dataclass(frozen=True, slots=True)
class PreferenceRecord:
    """One expert comparison of two answers to the same prompt."""

    id: str
    prompt: str
    answer_a: str
    answer_b: str
    preferred: Choice
    annotator: str
    rationale: str | None = None
    objectives: Mapping[str, Choice] = field(default_factory=dict)
    """Per-objective judgement (keys from `OBJECTIVES`); objectives not judged are absent."""
    messages: tuple[Mapping[str, str], ...] = ()
    """Conversation turns before `prompt` (OpenAI-style role/content), oldest first."""
    source: str | None = None
    completion_id: str | None = None
    created: str | None = None

    @property
    def is_tie(self) -> bool:
        return self.preferred == "tie"

    @property
    def chosen(self) -> str:
        """The preferred answer (a tie has none: `ValueError`)."""
        if self.is_tie:
            raise ValueError(f"preference {self.id} is a tie: it has no chosen answer")
        return self.answer_a if self.preferred == "a" else self.answer_b

    @property
    def rejected(self) -> str:
        """The answer not preferred (a tie has none: `ValueError`)."""
        if self.is_tie:
            raise ValueError(f"preference {self.id} is a tie: it has no rejected answer")
        return self.answer_b if self.preferred == "a" else self.answer_a

    def conversation(self) -> list[dict[str, str]]:
        """The whole conversation up to the answers: earlier turns, then `prompt` as a user turn."""
        return [dict(turn) for turn in self.messages] + [{"role": "user", "content": self.prompt}]

    def to_dict(self) -> dict[str, Any]:
        """The JSONL object; optional fields left unset are omitted."""
        record: dict[str, Any] = {name: getattr(self, name) for name in _REQUIRED}
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value:
                record[name] = ([dict(turn) for turn in value] if name == "messages"
                                else dict(value) if name == "objectives" else value)
        return record


@dataclass(frozen=True, slots=True)
class LineError:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


# ----------------------------------------------------------------------------- reading


def parse_preference(record: object) -> PreferenceRecord:
    """Validate one decoded JSON value; `ValueError` with one sentence naming the bad field."""
    if not isinstance(record, dict):
        raise ValueError(f"found a JSON {type(record).__name__}, not an object")
    if record.get("status") == QUARANTINED:
        raise ValueError("this is a quarantined correction (the safety guard rejected it), not a preference "
                         "pair: quarantine files are for review, never for training (docs/feedback.md)")
    missing = [name for name in _REQUIRED if name not in record]
    if missing:
        raise ValueError(f"missing {', '.join(repr(name) for name in missing)}")
    unknown = sorted(set(record) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"unknown key {', '.join(repr(name) for name in unknown)} "
                         f"(known: {', '.join(_REQUIRED + _OPTIONAL)})")
    for name in ("id", "prompt", "answer_a", "answer_b", "annotator"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise ValueError(f'"{name}" must be a non-empty string')
    if record["answer_a"] == record["answer_b"]:
        raise ValueError('"answer_a" and "answer_b" are the same text; a comparison needs two answers')
    if record["preferred"] not in CHOICES:
        raise ValueError(f'"preferred" must be one of {", ".join(CHOICES)}, got {record["preferred"]!r}')
    for name in ("rationale", "source", "completion_id", "created"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ValueError(f'"{name}" must be a string when given')
    return PreferenceRecord(
        id=record["id"], prompt=record["prompt"], answer_a=record["answer_a"], answer_b=record["answer_b"],
        preferred=record["preferred"], annotator=record["annotator"], rationale=record.get("rationale"),
        objectives=_objectives(record.get("objectives")), messages=_messages(record.get("messages")),
        source=record.get("source"), completion_id=record.get("completion_id"), created=record.get("created"))


def _objectives(value: object) -> dict[str, Choice]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError('"objectives" must be an object like {"safety": "a"}')
    for name, choice in value.items():
        if name not in OBJECTIVES:
            raise ValueError(f'"objectives" has unknown objective {name!r} (known: {", ".join(OBJECTIVES)})')
        if choice not in CHOICES:
            raise ValueError(f'"objectives.{name}" must be one of {", ".join(CHOICES)}, got {choice!r}')
    return dict(value)


def _messages(value: object) -> tuple[dict[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError('"messages" must be a list of {"role", "content"} objects')
    turns = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or set(turn) != {"role", "content"}:
            raise ValueError(f'"messages[{index}]" must be an object with exactly "role" and "content"')
        if turn["role"] not in ROLES:
            raise ValueError(f'"messages[{index}].role" must be one of {", ".join(ROLES)}, got {turn["role"]!r}')
        if not isinstance(turn["content"], str):
            raise ValueError(f'"messages[{index}].content" must be a string')
        turns.append({"role": turn["role"], "content": turn["content"]})
    return tuple(turns)


def iter_preferences(path: str | Path) -> Iterator[PreferenceRecord | LineError]:
    """Every non-blank line of `path` in order: a record, or the error that line has.

    A missing or unreadable file raises `InputDataError`. Duplicate ids are reported as an
    error on the later line (the first record is kept).
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputDataError(f"{path}: preference file not found; check the path") from None
    except OSError as exc:
        raise InputDataError(f"{path}: cannot open the preference file ({exc})") from None
    seen: dict[str, int] = {}
    with handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = parse_preference(json.loads(line.rstrip("\r\n")))
                except json.JSONDecodeError as exc:
                    yield LineError(path, line_number, f"not valid JSON ({exc.msg} at column {exc.colno})")
                    continue
                except ValueError as exc:
                    yield LineError(path, line_number, str(exc))
                    continue
                if record.id in seen:
                    yield LineError(path, line_number, f'duplicate id {record.id!r} (first on line {seen[record.id]})')
                    continue
                seen[record.id] = line_number
                yield record
        except UnicodeDecodeError as exc:
            raise InputDataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_preferences(path: str | Path, *, allow_empty: bool = False) -> list[PreferenceRecord]:
    """All records of `path`. Any bad line raises one `InputDataError` listing the bad lines
    (the first `MAX_ERRORS_SHOWN`, then a count), so nothing is silently skipped. Records with
    source `feedback_guard_rejected` (a correction the guard rejected, filed as a pair by servers
    before the quarantine file) are skipped with a logged warning: they are never training pairs."""
    records: list[PreferenceRecord] = []
    errors: list[LineError] = []
    quarantined = 0
    for item in iter_preferences(path):
        if isinstance(item, LineError):
            errors.append(item)
        elif item.source == QUARANTINE_SOURCE:
            quarantined += 1  # a rejected correction an older server filed as a pair: never a training pair
        else:
            records.append(item)
    if quarantined:
        logger.warning("%s: %d correction(s) the safety guard rejected (source %r) skipped: they are "
                       "quarantined, not training pairs", path, quarantined, QUARANTINE_SOURCE)
    if errors:
        shown = "; ".join(str(error) for error in errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise InputDataError(f"{path}: {len(errors)} bad line(s): {shown}{more}; {_FORMAT_HINT}")
    if not records and not allow_empty:
        raise InputDataError(f"{path}: the file holds no preferences; {_FORMAT_HINT}")
    return records


def decisive(records: Iterable[PreferenceRecord]) -> list[PreferenceRecord]:
    """The records with a winner (ties dropped): what Bradley-Terry and DPO train on."""
    return [record for record in records if not record.is_tie]


# ----------------------------------------------------------------------------- writing


def write_preferences(path: str | Path, records: Sequence[PreferenceRecord]) -> Path:
    """Write `records` as a new file (atomically: a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(_line(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def append_preference(path: str | Path, record: PreferenceRecord, *, fsync: bool = True) -> None:
    """Append one record as one whole line under an exclusive lock (safe across processes).

    A file whose last line lacks its newline (a crash mid-write elsewhere) gets one first, so
    the new record never merges into the torn line; reading then reports the torn line.
    """
    append_jsonl(path, record.to_dict(), fsync=fsync)


def _line(record: PreferenceRecord) -> str:
    return json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=False) + "\n"
