"""The server's audit trail: `safety.AuditLog` behind one writer thread with group commit.

With `safety.audit.fsync: always` every record must be on disk before its answer leaves. One
fsync per record (~3 ms here) would cap the server at a few hundred records a second, so the
writer appends every record that is waiting, fsyncs once, and only then releases the requests
whose records were in that group: each answer still waits for its own record to be durable,
and concurrent requests share the fsync. The event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from clinical_rlhf.safety import AuditLog

_STOP = object()


class AuditWriter:
    """Usage: `with AuditWriter(path, fsync="always") as audit: await audit.record("guard_check", key_id, ...)`."""

    def __init__(self, path: Path, fsync: str = "always", store_raw_text: bool = False,
                 key: bytes | None = None) -> None:
        self.path = Path(path)
        self.durable = fsync == "always"
        self.log = AuditLog(self.path, fsync="batch" if self.durable else fsync, store_raw_text=store_raw_text,
                            key=key)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.records_written = 0

    def __enter__(self) -> AuditWriter:
        self.log.open()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self.log.close()

    async def record(self, event: str, actor: str, **fields: Any) -> dict[str, Any]:
        """Append one record (see `AuditLog.record`); returns once it is written (and synced)."""
        if self._thread is None:
            raise RuntimeError("the audit writer is closed")
        future: Future = Future()
        self._queue.put((event, actor, fields, future))
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group = [self._queue.get()]
            while True:  # everything already waiting joins this group
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(item is _STOP for item in group)
            self._commit([item for item in group if item is not _STOP])

    def _commit(self, group: list[tuple]) -> None:
        written = []
        for event, actor, fields, future in group:
            # A request cancelled meanwhile (client gone) still gets its record; only the reply is dropped.
            waiting = future.set_running_or_notify_cancel()
            try:
                record = self.log.record(event, actor, **fields)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request (it answers 503)
                if waiting:
                    future.set_exception(exc)
                continue
            written.append((future if waiting else None, record))
        if written and self.durable:
            try:
                self.log.flush()
            except Exception as exc:  # noqa: BLE001
                for future, _ in written:
                    if future is not None:
                        future.set_exception(exc)
                return
        self.records_written += len(written)
        for future, record in written:
            if future is not None:
                future.set_result(record)
