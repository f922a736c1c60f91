"""Append-only, hash-chained audit log (JSON Lines) and its verifier.

Each record: `seq`, UTC `time`, `actor`, `event`, SHA-256 of the prompt and the answer (their
PHI-scrubbed text too when `store_raw_text`), the verdict, `details`, `prev_hash` and
`hash = sha256(prev_hash + "\\n" + canonical JSON of the record without "hash")`. Changing,
deleting, inserting or reordering a record breaks the chain at that record.

Concurrency: a thread lock plus an exclusive `flock` on the file, held while the writer reads the
chain head and appends one whole line with a single `write`; processes sharing a file therefore
interleave whole records and never fork the chain. Crashes: `fsync="always"` syncs every record;
a line left without its newline by a crash is a torn tail, which the next writer moves to a
`.torn-<seq>` file beside the log and records as an `audit_recovered` event before it continues
the chain - the loss is visible in the log itself, never silently accepted.
Keyed chain: with a secret key (`safety/audit_key.py`) every record carries `chain:
"hmac-sha256"` and its `hash` is HMAC-SHA-256 under the key, so re-hashing the chain after an
edit or appending a forged record needs the key. Neither kind of chain shows records cut from the
end (or an emptied file): `anchor()` gives the head hash and record count, which the trainer writes
into every checkpoint manifest, the MLflow run and the Prometheus exporter, and the server logs
periodically; `verify_audit_log(..., anchor=...)` checks the log against such a copy.

Flag evidence (the matched words) is text from the prompt or answer: without `store_raw_text`
a flag keeps its rule id, span offsets and a SHA-256 of the evidence; with it, the evidence is
PHI-scrubbed like the texts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from clinical_rlhf.errors import AuditIntegrityError
from clinical_rlhf.safety.phi import scrub_phi
from clinical_rlhf.safety.verdict import SafetyVerdict

try:
    import fcntl
except ImportError:  # Windows: the thread lock still serialises writers within one process
    fcntl = None  # type: ignore[assignment]

GENESIS_HASH = "0" * 64
KEYED_CHAIN = "hmac-sha256"
"""Value of a keyed record's `chain` field; a record without the field is on a plain SHA-256 chain."""
EVENTS = ("guard_check", "alert", "emergency_stop", "rollback", "checkpoint", "run_start", "run_end",
          "audit_recovered", "resumed_from")
FsyncPolicy = Literal["always", "batch", "never"]
_TAIL_CHUNK = 65536


def canonical_json(record: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8: one byte sequence per record, whatever wrote it."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=str)


def chain_hash(prev_hash: str, record: dict[str, Any], key: bytes | None = None) -> str:
    """SHA-256 (or, with `key`, HMAC-SHA-256) of the previous hash and the record without `hash`."""
    body = {name: value for name, value in record.items() if name != "hash"}
    message = f"{prev_hash}\n{canonical_json(body)}".encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditAnchor:
    """A copy of the chain's head kept outside the log: a verifier given it detects records cut
    from the end and any rewrite of the first `count` records."""

    count: int
    head_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "head_hash": self.head_hash}

    @classmethod
    def from_dict(cls, data: Any) -> AuditAnchor:
        """Raises ValueError when `data` is not `{"count": int >= 0, "head_hash": 64 hex digits}`."""
        if not isinstance(data, dict):
            raise ValueError("an audit anchor is an object {count, head_hash}")
        count, head = data.get("count"), data.get("head_hash")
        if type(count) is not int or count < 0 or not _is_hash(head):
            raise ValueError("an audit anchor needs a count >= 0 and a head_hash of 64 hex digits")
        return cls(count, head)


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(ch in "0123456789abcdef" for ch in value)


def audit_flag(flag: dict[str, Any], store_raw_text: bool) -> dict[str, Any]:
    """A flag as the audit log stores it: the evidence PHI-scrubbed (raw text on) or replaced by
    its SHA-256 (off; the rule id and the span still say what fired and where)."""
    evidence = flag.get("evidence")
    stored = {name: value for name, value in flag.items() if name != "evidence"}
    if store_raw_text:
        stored["evidence"] = scrub_phi(evidence) if isinstance(evidence, str) else evidence
    else:
        stored["evidence_sha256"] = text_sha256(evidence) if isinstance(evidence, str) else None
    return stored


def text_sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AuditLog:
    """Usage: `with AuditLog(run_dir / "audit.jsonl") as audit: audit.record("run_start", run_id)`."""

    def __init__(self, path: Path | str, fsync: FsyncPolicy = "always", store_raw_text: bool = False,
                 key: bytes | None = None) -> None:
        if fsync not in ("always", "batch", "never"):
            raise ValueError(f"fsync must be 'always', 'batch' or 'never', got {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.store_raw_text = store_raw_text
        self.key = key
        self._fd: int | None = None
        self._thread_lock = threading.RLock()
        self._head: tuple[int, int, str] | None = None  # (file size, last seq, last hash)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> AuditLog:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                with self._file_lock():
                    self._read_head()
            except Exception:
                os.close(self._fd)
                self._fd, self._head = None, None
                raise

    def anchor(self) -> AuditAnchor:
        """The chain's head now (record count and last hash): keep it outside the log."""
        with self._thread_lock:
            if self._fd is None:
                self.open()
            with self._file_lock():
                _, count, head = self._read_head()
        return AuditAnchor(count, head)

    def flush(self) -> None:
        with self._thread_lock:
            if self._fd is not None and self.fsync != "never":
                os.fsync(self._fd)

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is None:
                return
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = None
                self._head = None

    # -- writing -----------------------------------------------------------------------------

    def record(self, event: str, actor: str, *, prompt: str | None = None, response: str | None = None,
               verdict: SafetyVerdict | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Append one record and return it (with its `seq` and `hash`)."""
        if not isinstance(event, str) or not event:
            raise ValueError("audit event must be a non-empty string, e.g. 'guard_check'")
        if not isinstance(actor, str) or not actor:
            raise ValueError("audit actor must be a non-empty string (a run id or an API key id)")
        body: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "actor": actor,
            "event": event,
            "prompt_sha256": text_sha256(prompt),
            "response_sha256": text_sha256(response),
            "verdict": self._stored_verdict(verdict),
            "details": details,
        }
        if self.store_raw_text:
            body["prompt_text"] = scrub_phi(prompt) if prompt is not None else None
            body["response_text"] = scrub_phi(response) if response is not None else None
        with self._thread_lock:
            if self._fd is None:
                self.open()
            with self._file_lock():
                return self._append(body)

    def _stored_verdict(self, verdict: SafetyVerdict | None) -> dict[str, Any] | None:
        if verdict is None:
            return None
        stored = verdict.to_dict()
        stored["flags"] = [audit_flag(flag, self.store_raw_text) for flag in stored["flags"]]
        return stored

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        size, seq, prev_hash = self._read_head()
        record = {"seq": seq + 1, **body, "prev_hash": prev_hash}
        if self.key is not None:
            record["chain"] = KEYED_CHAIN
        record["hash"] = chain_hash(prev_hash, record, self.key)
        data = (canonical_json(record) + "\n").encode("utf-8", "surrogatepass")
        _write_all(self._fd, data)
        if self.fsync == "always":
            os.fsync(self._fd)
        self._head = (size + len(data), record["seq"], record["hash"])
        return record

    # -- the chain head ----------------------------------------------------------------------

    def _read_head(self) -> tuple[int, int, str]:
        """(size, last seq, last hash) of the file, repairing a torn tail first. Cached while the
        file size is the one this writer left (no other process appended meanwhile)."""
        size = os.fstat(self._fd).st_size
        if self._head is not None and self._head[0] == size:
            return self._head
        if size == 0:
            self._head = (0, 0, GENESIS_HASH)
            return self._head
        tail, tail_start = _read_tail(self._fd, size)
        if not tail.endswith(b"\n"):
            return self._recover_torn_tail(size, tail, tail_start)
        last = self._last_record(tail[:-1].rsplit(b"\n", 1)[-1])
        self._head = (size, last[0], last[1])
        return self._head

    def _last_record(self, line: bytes) -> tuple[int, str]:
        """(seq, hash) of the log's last complete line; AuditIntegrityError when it is not a record
        of this log's kind of chain (keyed or not)."""
        try:
            last = json.loads(line)
            seq, head, keyed = int(last["seq"]), str(last["hash"]), last.get("chain") == KEYED_CHAIN
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuditIntegrityError(
                f"audit log {self.path}: its last line is not an audit record; run `clinical-rlhf audit "
                f"verify {self.path}`, then move the damaged file aside (a new run starts a new log)") from None
        if keyed != (self.key is not None):
            raise AuditIntegrityError(
                f"audit log {self.path} was written {'with' if keyed else 'without'} an audit key and is now "
                f"opened {'with' if self.key is not None else 'without'} one; use the same key setting "
                f"(safety.audit.key_file or the variable named by safety.audit.key_env) as the writer that "
                f"started it")
        return seq, head

    def _recover_torn_tail(self, size: int, tail: bytes, tail_start: int) -> tuple[int, int, str]:
        cut = tail.rfind(b"\n") + 1
        keep, torn = tail_start + cut, tail[cut:]
        seq, head = self._last_record(tail[: cut - 1]) if cut else (0, GENESIS_HASH)  # before cutting anything
        saved = self.path.with_name(f"{self.path.name}.torn-{seq + 1}")
        saved.write_bytes(torn)  # kept before it is cut from the log
        os.ftruncate(self._fd, keep)
        self._head = (keep, seq, head)
        self._append({
            "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "actor": "audit-log", "event": "audit_recovered", "prompt_sha256": None, "response_sha256": None,
            "verdict": None,
            "details": {"torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest(),
                        "saved_to": saved.name, "reason": "incomplete last line (crash during a write)"},
        })
        return self._head

    def _file_lock(self) -> _FileLock:
        return _FileLock(self._fd)


class _FileLock:
    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        if fcntl is not None and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        if fcntl is not None and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_tail(fd: int, size: int) -> tuple[bytes, int]:
    """Bytes from the start of the last complete line to the end of the file (that line plus any
    torn piece after it), and the offset where they start."""
    start = size
    while True:
        start = max(0, start - _TAIL_CHUNK)
        data = os.pread(fd, size - start, start)
        last_newline = data.rfind(b"\n")
        if last_newline == -1:
            if start == 0:
                return data, 0  # not one complete line: all of it is torn
            continue
        line_start = data.rfind(b"\n", 0, last_newline) + 1
        if line_start > 0 or start == 0:
            return data[line_start:], start + line_start
