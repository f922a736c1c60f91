"""Where an audit anchor (record count + head hash) comes from when a log is verified: given
on the command line, or read from a checkpoint manifest's `audit` entry (written by the trainer
at every save, so each checkpoint pins the audit trail up to that moment)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from clinical_rlhf.errors import InputDataError
from clinical_rlhf.safety.audit import AuditAnchor

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_KEY = "audit"


def anchor_from_options(head: str | None, count: int | None, against: Path | None) -> AuditAnchor | None:
    """`--expect-head H --expect-count N`, or `--against CHECKPOINT_DIR`, or neither."""
    if against is not None:
        if head is not None or count is not None:
            raise InputDataError("pass either --against CHECKPOINT_DIR or --expect-head/--expect-count, not both")
        return anchor_from_checkpoint(against)
    if (head is None) != (count is None):
        raise InputDataError("--expect-head and --expect-count go together: pass both (a checkpoint manifest's "
                             "`audit` entry has them), or use --against CHECKPOINT_DIR")
    if head is None:
        return None
    try:
        return AuditAnchor.from_dict({"count": count, "head_hash": head.strip().lower()})
    except ValueError as exc:
        raise InputDataError(f"--expect-head {head!r}: {exc}") from None


def anchor_from_checkpoint(directory: Path) -> AuditAnchor:
    """The anchor of a checkpoint directory, or of the newest anchored checkpoint in a directory
    of checkpoints (a run's `checkpoints/`, or the run directory itself)."""
    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        return _read(directory / MANIFEST)
    nested = directory / "checkpoints" if (directory / "checkpoints").is_dir() else directory
    anchored = []
    for manifest in sorted(nested.glob(f"*/{MANIFEST}")):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            iteration, anchor = int(data["iteration"]), data.get(MANIFEST_KEY)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("checkpoint %s: manifest.json is unreadable (corrupt); skipping this checkpoint",
                        manifest.parent)
            continue
        if anchor is not None:  # one written before anchoring (or without an audit log) cannot anchor
            anchored.append((iteration, manifest))
    if not anchored:
        raise InputDataError(f"--against {directory}: no checkpoint manifest with an audit anchor there; pass a "
                             f"checkpoint directory (runs/<name>/checkpoints/iter-000010) or a run directory")
    return _read(max(anchored)[1])


def _read(manifest: Path) -> AuditAnchor:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputDataError(f"{manifest} is not readable JSON; pass another checkpoint") from None
    if not isinstance(data, dict) or MANIFEST_KEY not in data:
        raise InputDataError(f"{manifest} has no `{MANIFEST_KEY}` anchor (written before anchoring, or with "
                             f"safety.audit.enabled off); pass a newer checkpoint or --expect-head/--expect-count")
    try:
        return AuditAnchor.from_dict(data[MANIFEST_KEY])
    except ValueError as exc:
        raise InputDataError(f"{manifest}: `{MANIFEST_KEY}`: {exc}") from None
