"""`POST /v1/feedback`: clinicians' ratings and corrections of served answers, as preference pairs.

The loop: the server remembers each completion it returned (id -> conversation, the answer the
client got, the guard's verdict) in a bounded LRU; a clinician then posts feedback on it by id,
and the feedback becomes reward-model training data in the preference format
(`clinical_rlhf.feedback.preferences`):

- a corrected answer: one preference record at once, the correction preferred over the served
  answer. The correction is checked by the guard too (with the question, read as one dialogue:
  "Yes, that's fine" to a question's overdose is rejected); one the guard rejects is quarantined
  (`clinical_rlhf.feedback.quarantine`): kept for review with the verdict, never written as a
  training pair, and the response says so.
- a rating: one line in the ratings file; when another completion of the same conversation
  (same turns, same prompt) holds the opposite rating (good vs bad), a preference record for the
  better-rated answer.

The served answer is the text the client got (emergency advice, notice or fallback included):
that is what the clinician judged. The two answers are put in random a/b order, so position
never predicts the winner. Each request leaves one `feedback` audit record (hashes, not text),
written before the records are appended: every record in the files has its audit record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clinical_rlhf.config import ServeFeedbackConfig
from clinical_rlhf.durable import append_jsonl
from clinical_rlhf.feedback.preferences import PreferenceRecord, append_preference, parse_preference
from clinical_rlhf.feedback.quarantine import QuarantinedCorrection, append_quarantined
from clinical_rlhf.safety import SafetyVerdict
from clinical_rlhf.safety.audit import text_sha256
from clinical_rlhf.serve.audit import AuditWriter
from clinical_rlhf.serve.auth import ApiKey
from clinical_rlhf.serve.errors import INVALID, APIError, log_failure
from clinical_rlhf.serve.gate import SafetyGate, reason_code
from clinical_rlhf.serve.metrics import ServeMetrics
from clinical_rlhf.serve.responses import Answer
from clinical_rlhf.serve.schemas import ChatCompletionRequest, CompletionRequest, FeedbackRequest
from clinical_rlhf.serve.service import guard_prompt

logger = logging.getLogger("clinical_rlhf.serve")

MAX_PAIRS_PER_RATING = 8
"""Preference pairs one rating may create (with the most recently rated opposite answers), so a
conversation asked thousands of times cannot turn one rating into thousands of records."""


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rating_class(rating: str | int) -> str:
    """`good` / `bad` as given; 1-5 mapped: 4-5 good, 1-2 bad, 3 neutral (never paired)."""
    if isinstance(rating, str):
        return rating
    return "good" if rating >= 4 else "bad" if rating <= 2 else "neutral"


# ----------------------------------------------------------------------------- served completions


@dataclass(frozen=True, slots=True)
class ServedCompletion:
    """One returned completion, as feedback needs it."""

    id: str
    kind: str
    """`chat` or `completion`."""
    model: str
    created: int
    messages: tuple[dict[str, str], ...]
    """Chat turns before the answered user turn (roles as sent); empty for a completion."""
    prompt: str
    """The answered user turn, or the completion prompt."""
    answer: str
    """The text the client got."""
    action: str
    """The guard's verdict on the answer: allow, escalate or reject (then `answer` is the fallback)."""
    reason_code: str | None
    key_id: str

    @classmethod
    def from_answer(cls, body: ChatCompletionRequest | CompletionRequest, answer: Answer, key_id: str):
        if isinstance(body, ChatCompletionRequest):
            turns = [{"role": message.role, "content": message.text} for message in body.messages]
            messages, prompt = tuple(turns[:-1]), turns[-1]["content"]
        else:
            messages, prompt = (), body.prompt
        return cls(answer.request_id, answer.kind, answer.model, answer.created, messages, prompt,
                   answer.gated.text, answer.gated.verdict.action, answer.gated.reason_code, key_id)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedCompletion:
        return cls(**{**data, "messages": tuple({"role": m["role"], "content": m["content"]}
                                                for m in data["messages"])})

    @property
    def chars(self) -> int:
        return len(self.prompt) + len(self.answer) + sum(len(turn["content"]) for turn in self.messages)

    @property
    def conversation(self) -> str:
        """SHA-256 of kind, earlier turns and prompt: equal for two completions of one conversation."""
        key = {"kind": self.kind, "messages": list(self.messages), "prompt": self.prompt}
        return hashlib.sha256(json.dumps(key, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def preference_messages(self) -> tuple[dict[str, str], ...]:
        """Earlier turns in the preference format's roles (an OpenAI `developer` turn is a system turn)."""
        return tuple({"role": "system" if t["role"] == "developer" else t["role"], "content": t["content"]}
                     for t in self.messages)

    def guard_prompt(self) -> str:
        """What the guard read as the question when it checked the served answer."""
        if self.kind == "chat":
            turns = [*self.messages, {"role": "user", "content": self.prompt}]
            return guard_prompt(ChatCompletionRequest(model=self.model, messages=turns))
        return guard_prompt(CompletionRequest(model=self.model, prompt=self.prompt))


class CompletionStore:
    """The last `capacity` served completions, within `max_chars` characters of text; the least
    recently used goes first. With `path`, each is also appended there (no fsync: it is a cache)
    and reloaded at `open`; the file rotates to `<path>.1` at `capacity` lines, so the disk holds
    at most twice the window and a restart still sees the whole window."""

    def __init__(self, capacity: int, max_chars: int, path: Path | None = None) -> None:
        self.capacity = capacity
        self.max_chars = max_chars
        self.path = path
        self._entries: OrderedDict[str, ServedCompletion] = OrderedDict()
        self._chars = 0
        self._fd: int | None = None
        self._lines = 0

    def __len__(self) -> int:
        return len(self._entries)

    def open(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        bad = 0
        for source in (self.path.with_name(self.path.name + ".1"), self.path):
            self._lines = 0
            for item in _read_jsonl(source):
                self._lines += 1
                try:
                    self._insert(ServedCompletion.from_dict(item))
                except (TypeError, KeyError, ValueError, AttributeError):
                    bad += 1
        if bad:
            logger.warning("%s: %d unreadable served completion(s) skipped (a crash mid-write?)", self.path, bad)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":  # a torn last line stays apart from the next
            os.write(self._fd, b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def add(self, entry: ServedCompletion) -> None:
        self._insert(entry)
        if self._fd is None:
            return
        if self._lines >= self.capacity:
            os.close(self._fd)
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            self._lines = 0
        os.write(self._fd, (json.dumps(asdict(entry), ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass"))
        self._lines += 1

    def get(self, completion_id: str) -> ServedCompletion | None:
        entry = self._entries.get(completion_id)
        if entry is not None:
            self._entries.move_to_end(completion_id)
        return entry

    def _insert(self, entry: ServedCompletion) -> None:
        previous = self._entries.pop(entry.id, None)
        if previous is not None:
            self._chars -= previous.chars
        self._entries[entry.id] = entry
        self._chars += entry.chars
        while self._entries and (len(self._entries) > self.capacity or self._chars > self.max_chars):
            _, dropped = self._entries.popitem(last=False)
            self._chars -= dropped.chars


# ----------------------------------------------------------------------------- ratings


@dataclass(frozen=True, slots=True)
class Rated:
    """The latest rating of one completion, with what a pair needs."""

    id: str
    completion_id: str
    conversation: str
    rating: str | int
    annotator: str
    answer: str
    rationale: str | None = None

    @property
    def cls(self) -> str:
        return rating_class(self.rating)


class RatingIndex:
    """Latest rating per completion (the last `capacity` completions rated), by conversation."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._latest: OrderedDict[str, Rated] = OrderedDict()
        self._by_conversation: dict[str, dict[str, None]] = {}

    def opposite(self, rated: Rated) -> list[Rated]:
        """Other completions of `rated`'s conversation whose latest rating is the opposite class,
        most recently rated first, one per distinct answer text, at most `MAX_PAIRS_PER_RATING`."""
        if rated.cls == "neutral":
            return []
        found, texts = [], {rated.answer}
        for completion_id in reversed(self._by_conversation.get(rated.conversation, {})):
            other = self._latest[completion_id]
            if other.cls not in ("neutral", rated.cls) and other.answer not in texts:
                found.append(other)
                texts.add(other.answer)
        return found[:MAX_PAIRS_PER_RATING]

    def add(self, rated: Rated) -> None:
        self._latest.pop(rated.completion_id, None)
        self._latest[rated.completion_id] = rated
        same = self._by_conversation.setdefault(rated.conversation, {})
        same.pop(rated.completion_id, None)
        same[rated.completion_id] = None
        while len(self._latest) > self.capacity:
            _, dropped = self._latest.popitem(last=False)
            ids = self._by_conversation[dropped.conversation]
            del ids[dropped.completion_id]
            if not ids:
                del self._by_conversation[dropped.conversation]

    def load(self, path: Path) -> None:
        """Rebuild from the ratings file, so a restart still pairs new ratings with earlier ones."""
        bad = 0
        for line in _read_jsonl(path):
            try:
                self.add(Rated(line["id"], line["completion_id"], line["conversation"], line["rating"],
                               line["annotator"], line["answer"], line.get("rationale")))
            except (TypeError, KeyError, AttributeError):
                bad += 1
        if bad:
            logger.warning("%s: %d unreadable rating line(s) skipped", path, bad)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each non-blank line's JSON object, or None for a line that is not one (a torn tail)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                item = None
            yield item if isinstance(item, dict) else None


# ----------------------------------------------------------------------------- the endpoint


class FeedbackRecorder:
    """Remembers served completions (`remember`) and turns feedback on them into audited
    preference and rating records (`submit`). Runs on the event loop; the guard check goes to a
    guard worker process, the file appends to a thread."""

    def __init__(self, settings: ServeFeedbackConfig, run_dir: Path, gate: SafetyGate, metrics: ServeMetrics) -> None:
        directory = run_dir / "feedback"
        self.preferences_path = settings.preferences_file or directory / "preferences.jsonl"
        self.ratings_path = settings.ratings_file or directory / "ratings.jsonl"
        self.quarantine_path = settings.quarantine_file or directory / "quarantine.jsonl"
        served = directory / "served_completions.jsonl" if settings.persist_completions else None
        self.store = CompletionStore(settings.remember_completions, settings.remember_max_mib * 2**20, served)
        self.ratings = RatingIndex(settings.remember_completions)
        self.fsync = settings.fsync
        self.gate = gate
        self.metrics = metrics

    def open(self) -> None:
        """Reload persisted completions and earlier ratings (blocking: run it in a thread). The
        directories are made now, so a path that cannot be written stops the start, not a clinician."""
        for path in (self.preferences_path, self.ratings_path, self.quarantine_path):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not os.access(path.parent, os.W_OK):
                raise PermissionError(13, "not writable", str(path.parent))
        self.store.open()
        self.ratings.load(self.ratings_path)

    def close(self) -> None:
        self.store.close()

    def remember(self, body: ChatCompletionRequest | CompletionRequest, answer: Answer, key_id: str) -> None:
        try:
            self.store.add(ServedCompletion.from_answer(body, answer, key_id))
        except OSError as exc:  # remembered in memory; only the copy on disk is missing
            log_failure("persisting a served completion failed", exc)

    async def submit(self, body: FeedbackRequest, key: ApiKey, audit: AuditWriter) -> dict[str, Any]:
        feedback_id = f"feedback-{uuid.uuid4().hex}"
        details: dict[str, Any] = {"feedback_id": feedback_id, "completion_id": body.completion_id}
        entry = self.store.get(body.completion_id)
        if entry is None:
            await self._audit(audit, key, details={**details, "status": "unknown_completion"})
            raise APIError(404, f"this completion_id is unknown here, or older than the "
                                f"{self.store.capacity} most recent completions this server remembers "
                                f"(serve.feedback.remember_completions); send feedback with the id of a "
                                f"completion this server returned", "completion_not_found", param="completion_id")
        annotator, question = body.annotator or key.id, entry.guard_prompt()
        verdict = await self._check_correction(entry, body, question)
        flagged = verdict is not None and verdict.action == "reject"
        quarantined = [quarantine_record(entry, body, annotator, verdict, utc_now())] if flagged else []
        preferences, rating_line = self._records(entry, body, annotator, verdict)
        kinds = [kind for kind, given in (("correction", body.corrected_answer), ("rating", body.rating))
                 if given is not None]
        recorded = [record.id for record in preferences] + ([rating_line["id"]] if rating_line else [])
        details.update(status="recorded", kinds=kinds, annotator=annotator, rating=body.rating, recorded=recorded,
                       quarantined=[record.id for record in quarantined],
                       correction_flagged=flagged, served_action=entry.action,
                       served_answer_sha256=text_sha256(entry.answer), rationale_sha256=text_sha256(body.rationale))
        await self._audit(audit, key, prompt=question, response=body.corrected_answer or entry.answer,
                          verdict=verdict, details=details)
        try:
            await asyncio.to_thread(self._write, preferences, rating_line, quarantined)
        except OSError as exc:
            log_failure("writing feedback failed", exc)
            raise APIError(503, "the feedback could not be saved: the feedback files cannot be written; the "
                                "operator must check serve.feedback.preferences_file, ratings_file and their disk",
                           "feedback_unavailable") from None
        for kind in kinds:
            self.metrics.feedback.labels(kind=kind).inc()
        result: dict[str, Any] = {"id": feedback_id, "object": "feedback", "completion_id": entry.id,
                                  "status": "quarantined" if flagged else "recorded", "recorded": recorded}
        if verdict is not None:
            result["correction_safety"] = {"action": verdict.action, "reason_code": reason_code(verdict),
                                           "flags": _flags(verdict)}
        if flagged:
            result["quarantined"] = [record.id for record in quarantined]
            result["message"] = (f"the safety guard rejected the corrected answer ({reason_code(verdict)}); it is "
                                 f"quarantined for review and was not recorded as a training pair"
                                 + ("; the rating was recorded" if rating_line else ""))
        return result

    async def _check_correction(self, entry: ServedCompletion, body: FeedbackRequest,
                                question: str) -> SafetyVerdict | None:
        """The guard's verdict on the corrected answer (in a guard worker, time-bounded), or None."""
        if body.corrected_answer is None:
            return None
        if body.corrected_answer == entry.answer.strip():
            raise APIError(INVALID, "`corrected_answer` is the served answer unchanged; send a `rating` instead",
                           "invalid_request", param="corrected_answer")
        return await self.gate.text(question, body.corrected_answer)

    def _records(self, entry: ServedCompletion, body: FeedbackRequest, annotator: str,
                 verdict: SafetyVerdict | None) -> tuple[list[PreferenceRecord], dict[str, Any] | None]:
        """The preference records and the ratings line of one request."""
        now = utc_now()
        preferences: list[PreferenceRecord] = []
        rejected = verdict is not None and verdict.action == "reject"  # quarantined by `submit` instead
        if body.corrected_answer is not None and not rejected:
            pair = correction_pair(entry, body, annotator, now)
            if (problem := _problem(pair)) is not None:
                raise APIError(INVALID, f"this feedback cannot be recorded as a preference: {problem}",
                               "invalid_request")
            preferences.append(pair)
        if body.rating is None:
            return preferences, None
        rated = Rated(f"rating-{uuid.uuid4().hex}", entry.id, entry.conversation, body.rating, annotator,
                      entry.answer, body.rationale)
        pairs = [rating_pair(entry, rated, other, now) for other in self.ratings.opposite(rated)]
        preferences += [pair for pair in pairs if _problem(pair) is None]
        # Indexed now, before the caller's awaits, so a concurrent rating of the same conversation
        # pairs with this one. Should the write then fail (503), the index holds a rating the file
        # lacks until the next restart; the file stays the record.
        self.ratings.add(rated)
        return preferences, _rating_line(entry, rated, now)

    def _write(self, preferences: list[PreferenceRecord], rating_line: dict[str, Any] | None,
               quarantined: list[QuarantinedCorrection]) -> None:
        for record in quarantined:
            append_quarantined(self.quarantine_path, record, fsync=self.fsync)
        if rating_line is not None:
            append_jsonl(self.ratings_path, rating_line, fsync=self.fsync)
        for record in preferences:
            append_preference(self.preferences_path, record, fsync=self.fsync)

    async def _audit(self, audit: AuditWriter, key: ApiKey, **fields: Any) -> None:
        try:
            await audit.record("feedback", key.id, **fields)
        except Exception as exc:  # noqa: BLE001
            log_failure("audit write failed", exc)
            raise APIError(503, "the audit log cannot be written, so no feedback is recorded; the operator must "
                                "check serve.audit_file and its disk", "audit_unavailable") from None
        self.metrics.audit_records.inc()


def correction_pair(entry: ServedCompletion, body: FeedbackRequest, annotator: str, now: str) -> PreferenceRecord:
    """The corrected answer preferred over the served one, in random a/b order (only for a
    correction the guard did not reject: see `quarantine_record`)."""
    corrected_first = secrets.randbelow(2) == 0
    side = {"corrected": "a" if corrected_first else "b", "served": "b" if corrected_first else "a", "tie": "tie"}
    a, b = (body.corrected_answer, entry.answer) if corrected_first else (entry.answer, body.corrected_answer)
    return PreferenceRecord(
        id=f"pref-fb-{uuid.uuid4().hex}", prompt=entry.prompt, answer_a=a, answer_b=b, preferred=side["corrected"],
        annotator=annotator, rationale=body.rationale,
        objectives={name: side[judgement] for name, judgement in (body.objectives or {}).items()},
        messages=entry.preference_messages(), source="feedback", completion_id=entry.id, created=now)


def quarantine_record(entry: ServedCompletion, body: FeedbackRequest, annotator: str, verdict: SafetyVerdict,
                      now: str) -> QuarantinedCorrection:
    """A correction the guard rejected, with the verdict (flags without evidence text), for review."""
    return QuarantinedCorrection(
        id=f"quarantine-{uuid.uuid4().hex}", completion_id=entry.id, prompt=entry.prompt,
        corrected_answer=body.corrected_answer or "", served_answer=entry.answer, annotator=annotator,
        verdict={"action": verdict.action, "reason_code": reason_code(verdict), "flags": _flags(verdict)},
        created=now, messages=entry.preference_messages(), rationale=body.rationale,
        objectives=dict(body.objectives or {}))


def rating_pair(entry: ServedCompletion, rated: Rated, other: Rated, now: str) -> PreferenceRecord:
    """The good-rated answer preferred over the bad-rated one (same conversation), random a/b order.
    Two annotators' ratings make a pair too; `annotator` then names both."""
    good, bad = (rated, other) if rated.cls == "good" else (other, rated)
    good_first = secrets.randbelow(2) == 0
    a, b = (good.answer, bad.answer) if good_first else (bad.answer, good.answer)
    annotator = rated.annotator if other.annotator == rated.annotator else f"{other.annotator}+{rated.annotator}"
    notes = [f"from ratings: {good.completion_id} rated {good.rating}, {bad.completion_id} rated {bad.rating}",
             *(f"{which}: {r.rationale}" for which, r in (("good", good), ("bad", bad)) if r.rationale)]
    return PreferenceRecord(
        id=f"pref-fb-{uuid.uuid4().hex}", prompt=entry.prompt, answer_a=a, answer_b=b,
        preferred="a" if good_first else "b", annotator=annotator, rationale="; ".join(notes),
        messages=entry.preference_messages(), source="feedback", completion_id=entry.id, created=now)


def _rating_line(entry: ServedCompletion, rated: Rated, now: str) -> dict[str, Any]:
    """A line of the ratings file: self-contained, so pairs can be rebuilt without the server."""
    line = {"id": rated.id, "completion_id": entry.id, "conversation": rated.conversation, "rating": rated.rating,
            "class": rated.cls, "annotator": rated.annotator, "created": now, "model": entry.model,
            "kind": entry.kind, "served_action": entry.action, "prompt": entry.prompt,
            "messages": list(entry.preference_messages()), "answer": entry.answer}
    if rated.rationale:
        line["rationale"] = rated.rationale
    return line


def _problem(record: PreferenceRecord) -> str | None:
    """Why the preference format would refuse `record`, or None. Checked before writing: one bad
    line would make the whole file unreadable to `load_preferences`."""
    try:
        parse_preference(record.to_dict())
    except ValueError as exc:
        return str(exc)
    return None


def _flags(verdict: SafetyVerdict) -> list[dict[str, Any]]:
    """Like a response's `safety.flags`: no evidence text."""
    return [{"category": f.category, "subtype": f.subtype, "severity": f.severity, "action": f.action,
             "rule_id": f.rule_id} for f in verdict.flags if f.action != "allow"]
