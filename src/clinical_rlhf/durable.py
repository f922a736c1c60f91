"""Writing files that must survive a crash or a concurrent writer: checksums, fsync, locked
JSONL appends. Checkpoints, reward-model directories and feedback files all go through here."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere appends are serialised by the caller's process only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: str | Path) -> None:
    """fsync a file or a directory (directories need it for renames and new entries to persist)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: str | Path, data: dict[str, Any], *, fsync: bool = True) -> None:
    """Append `data` as one whole JSON line under an exclusive lock (safe across processes).

    A file whose last line lacks its newline (a crash mid-write elsewhere) gets one first, so the
    new line never merges into the torn one; a reader then reports the torn line on its own.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        if fsync:
            os.fsync(fd)
    finally:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
