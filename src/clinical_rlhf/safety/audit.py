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
An unkeyed chain cannot stop someone who rewrites every later record; keep the head hash that
`verify_audit_log` reports somewhere else (a ticket, the tracker) to anchor it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from clinical_rlhf.safety.phi import scrub_phi
from clinical_rlhf.safety.verdict import SafetyVerdict

try:
    import fcntl
except ImportError:  # Windows: the thread lock still serialises writers within one process
    fcntl = None  # type: ignore[assignment]

GENESIS_HASH = "0" * 64
EVENTS = ("guard_check", "alert", "emergency_stop", "rollback", "checkpoint", "run_start", "run_end",
          "audit_recovered")
FsyncPolicy = Literal["always", "batch", "never"]
_TAIL_CHUNK = 65536


def canonical_json(record: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8: one byte sequence per record, whatever wrote it."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=str)


def chain_hash(prev_hash: str, record: dict[str, Any]) -> str:
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(f"{prev_hash}\n{canonical_json(body)}".encode()).hexdigest()


def text_sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AuditLog:
    """Usage: `with AuditLog(run_dir / "audit.jsonl") as audit: audit.record("run_start", run_id)`."""

    def __init__(self, path: Path | str, fsync: FsyncPolicy = "always", store_raw_text: bool = False) -> None:
        if fsync not in ("always", "batch", "never"):
            raise ValueError(f"fsync must be 'always', 'batch' or 'never', got {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.store_raw_text = store_raw_text
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
            with self._file_lock():
                self._read_head()

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
            "verdict": verdict.to_dict() if verdict is not None else None,
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

    def _append(self, body: dict[str, Any]) -> dict[str, Any]:
        size, seq, prev_hash = self._read_head()
        record = {"seq": seq + 1, **body, "prev_hash": prev_hash}
        record["hash"] = chain_hash(prev_hash, record)
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
        last_line = tail[:-1].rsplit(b"\n", 1)[-1]
        try:
            last = json.loads(last_line)
            self._head = (size, int(last["seq"]), str(last["hash"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"audit log {self.path}: its last line is not an audit record; run "
                             f"`clinical-rlhf audit verify {self.path}` and move the damaged file aside") from None
        return self._head

    def _recover_torn_tail(self, size: int, tail: bytes, tail_start: int) -> tuple[int, int, str]:
        cut = tail.rfind(b"\n") + 1
        keep, torn = tail_start + cut, tail[cut:]
        os.ftruncate(self._fd, keep)
        if cut:
            last = json.loads(tail[: cut - 1])
            self._head = (keep, int(last["seq"]), str(last["hash"]))
        else:
            self._head = (0, 0, GENESIS_HASH)
        saved = self.path.with_name(f"{self.path.name}.torn-{self._head[1] + 1}")
        saved.write_bytes(torn)
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
