"""Verify an audit log: walk the hash chain and report the first record that breaks it.

What each check catches (tests/safety/test_audit_tamper.py holds one test per case):

    tamper                              no key   key   anchor (count + head hash)
    edit, delete, insert, reorder,      yes      yes   yes
    torn tail, duplicate, blank line
    re-chain after an edit              no       yes   yes (edit before the anchored record)
    append a forged record              no       yes   no (records after the anchor are new)
    delete the last record(s), empty    no       no    yes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from clinical_rlhf.safety.audit import GENESIS_HASH, KEYED_CHAIN, AuditAnchor, chain_hash

ProblemKind = Literal["altered", "deleted", "inserted", "reordered", "torn_tail", "malformed", "key_required",
                      "unkeyed", "truncated", "rewritten"]
_REQUIRED = {"seq": int, "time": str, "actor": str, "event": str, "prev_hash": str, "hash": str}


@dataclass(frozen=True, slots=True)
class AuditProblem:
    kind: ProblemKind
    seq: int
    """Sequence number of the first record affected (the one expected at that place)."""
    line: int
    """1-based line number in the file."""
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    path: Path
    count: int
    """Records verified before the first problem (all of them when intact)."""
    problem: AuditProblem | None
    head_hash: str
    """Hash of the last verified record: keep it elsewhere to anchor the chain."""
    recoveries: int
    """`audit_recovered` records: crashes whose torn line a writer moved aside."""
    keyed: bool = False
    """Every record's HMAC was checked with the key."""
    anchor: AuditAnchor | None = None
    """The anchor the log was checked against, if any."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is None:
            extra = f", {self.recoveries} crash recoveries recorded" if self.recoveries else ""
            extra += ", HMAC chain checked with the key" if self.keyed else ""
            if self.anchor is not None:
                extra += f", matches the anchor ({self.anchor.count} records)"
            return f"{self.path}: intact, {self.count} records, head {self.head_hash}{extra}"
        p = self.problem
        return f"{self.path}: {p.kind} at record seq {p.seq} (line {p.line}): {p.message}"


def verify_audit_log(path: Path | str, *, key: bytes | None = None,
                     anchor: AuditAnchor | None = None) -> AuditReport:
    """Check every record's hash (HMAC with `key`) and its link to the one before, then, with
    `anchor`, that the log still holds the anchored records unchanged. Never raises on bad
    content; a missing file is reported as an OSError by the caller's open."""
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop() if lines else b""
    records = [_parse(line) for line in lines]
    seq_positions: dict[int, list[int]] = {}
    for index, record in enumerate(records):
        if record is not None:
            seq_positions.setdefault(record["seq"], []).append(index)

    expected_seq, expected_prev, recoveries = 1, GENESIS_HASH, 0
    anchored_hash = GENESIS_HASH if anchor is not None and anchor.count == 0 else None

    def report(kind: ProblemKind, seq: int, index: int, message: str) -> AuditReport:
        problem = AuditProblem(kind, seq, index + 1, message)
        return AuditReport(path, expected_seq - 1, problem, expected_prev, recoveries, key is not None, anchor)

    for index, record in enumerate(records):
        if record is None:
            return report("malformed", expected_seq, index, "line is not a complete audit record (bad JSON or "
                                                             "missing keys)")
        keyed = record.get("chain") == KEYED_CHAIN
        if keyed and key is None:
            return report("key_required", record["seq"], index, "the log is on a keyed (HMAC) chain; pass "
                                                                "--key-file, or set the key's environment variable")
        if key is not None and not keyed:
            return report("unkeyed", record["seq"], index, "a key was given but this record is on a plain SHA-256 "
                                                           "chain: it was forged without the key, or the log was "
                                                           "written without one")
        if chain_hash(record["prev_hash"], record, key) != record["hash"]:
            return report("altered", record["seq"], index, "the record's content does not match its "
                                                           + ("HMAC (altered, or forged without the key)" if keyed
                                                              else "hash"))
        if record["seq"] != expected_seq or record["prev_hash"] != expected_prev:
            return report(*_broken_link(record, index, expected_seq, expected_prev, records, seq_positions))
        expected_seq, expected_prev = expected_seq + 1, record["hash"]
        recoveries += record["event"] == "audit_recovered"
        if anchor is not None and record["seq"] == anchor.count:
            anchored_hash = record["hash"]
    if anchor is not None and anchored_hash is None:
        return report("truncated", expected_seq, len(records),
                      f"the log holds {expected_seq - 1} records, the anchor says {anchor.count}: records were "
                      f"cut from the end (or the file was emptied)")
    if anchor is not None and anchored_hash != anchor.head_hash:
        return report("rewritten", anchor.count, anchor.count - 1,
                      f"record {anchor.count} has hash {anchored_hash[:16]}..., the anchor says "
                      f"{anchor.head_hash[:16]}...: the chain was rewritten (re-hashed) after the anchor was taken")
    if torn:
        return report("torn_tail", expected_seq, len(records),
                      f"the last line ({len(torn)} bytes) has no newline: a write was cut off; the next "
                      f"writer moves it aside and records the recovery")
    return AuditReport(path, expected_seq - 1, None, expected_prev, recoveries, key is not None, anchor)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    for key, kind in _REQUIRED.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            return None
    return record


def _broken_link(record: dict[str, Any], index: int, expected_seq: int, expected_prev: str,
                 records: list[dict[str, Any] | None], seq_positions: dict[int, list[int]]
                 ) -> tuple[ProblemKind, int, int, str]:
    """Name the break between a valid record and the chain before it."""
    seq = record["seq"]
    if seq > expected_seq:
        later = [p for p in seq_positions.get(expected_seq, []) if p > index]
        if not later:
            return "deleted", expected_seq, index, f"records {expected_seq} to {seq - 1} are missing"
        true_predecessors = [records[p] for p in seq_positions.get(seq - 1, [])]
        if any(r is not None and r["hash"] == record["prev_hash"] for r in true_predecessors):
            return "reordered", expected_seq, index, (f"record {seq} comes before record {expected_seq} "
                                                      f"(line {later[0] + 1})")
        return "inserted", seq, index, f"a record that is not part of the chain sits before record {expected_seq}"
    if seq < expected_seq and len(seq_positions.get(seq, [])) == 1:
        return "reordered", seq, index, f"record {seq} comes after record {expected_seq - 1}"
    if seq < expected_seq:
        return "inserted", seq, index, f"record {seq} appears twice: a record was inserted before line {index + 1}"
    return "inserted", seq, index, "the record does not link to the one before it (prev_hash differs)"
