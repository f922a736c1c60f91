"""The 11 ways to tamper with an audit log, each checked three ways: the plain chain (no key), the
keyed HMAC chain (the forger lacks the key) and an external anchor (count + head hash taken
before the tampering). The table in `safety/audit_verify.py` states the expected outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinical_rlhf.errors import AuditIntegrityError
from clinical_rlhf.safety import GENESIS_HASH, AuditLog, SafetyFlag, SafetyVerdict, chain_hash, verify_audit_log
from clinical_rlhf.safety.audit import KEYED_CHAIN, AuditAnchor

KEY = b"k" * 32
FORGER_KEY = b"f" * 32
RECORDS = 20


def _rechain(records: list[dict], start: int, key: bytes | None) -> None:
    """What a forger does after an edit: recompute every hash from `start` on. Without the real
    key a keyed chain can only be re-hashed with a guessed one."""
    prev = records[start - 1]["hash"] if start else GENESIS_HASH
    for record in records[start:]:
        record["prev_hash"] = prev
        record["hash"] = prev = chain_hash(prev, record, key)


def _forge_append(records: list[dict], key: bytes | None) -> None:
    last = records[-1]
    forged = {**last, "seq": last["seq"] + 1, "actor": "intruder", "prev_hash": last["hash"]}
    if key is not None:
        forged["chain"] = KEYED_CHAIN
    forged["hash"] = chain_hash(last["hash"], forged, key)
    records.append(forged)


def _edit_and_rechain(records: list[dict], key: bytes | None) -> None:
    records[5]["actor"] = "someone-else"
    _rechain(records, 5, key)


def _lines_edit(change):
    def apply(path: Path, key: bytes | None) -> None:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        change(lines)
        path.write_text("".join(lines), encoding="utf-8")
    return apply


def _records_edit(change):
    def apply(path: Path, key: bytes | None) -> None:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        change(records, FORGER_KEY if key is not None else None)
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return apply


def _edit(lines):
    record = json.loads(lines[3])
    record["actor"] = "someone-else"
    lines[3] = json.dumps(record) + "\n"


# case -> (tampering, detected with no key, with the key, with an anchor taken before it)
CASES = {
    "edit": (_lines_edit(_edit), True, True, True),
    "delete": (_lines_edit(lambda lines: lines.pop(4)), True, True, True),
    "insert": (_lines_edit(lambda lines: lines.insert(6, lines[2])), True, True, True),
    "reorder": (_lines_edit(lambda lines: lines.insert(7, lines.pop(3))), True, True, True),
    "torn_tail": (_lines_edit(lambda lines: lines.append('{"seq": 21, "ti')), True, True, True),
    "duplicate": (_lines_edit(lambda lines: lines.insert(9, lines[8])), True, True, True),
    "blank_line": (_lines_edit(lambda lines: lines.insert(10, "\n")), True, True, True),
    "delete_last": (_lines_edit(lambda lines: lines.pop()), False, False, True),
    "delete_last_10": (_lines_edit(lambda lines: lines.__delitem__(slice(-10, None))), False, False, True),
    "append_forged": (_records_edit(_forge_append), False, True, False),
    "rechain_after_edit": (_records_edit(_edit_and_rechain), False, True, True),
    "empty_file": (lambda path, key: path.write_bytes(b""), False, False, True),
}


def _write(path: Path, key: bytes | None) -> AuditAnchor:
    flag = SafetyFlag("red_flag", "stroke", "critical", "face drooping", (0, 13), "prompt", "red_flag:stroke", "escalate")
    with AuditLog(path, key=key) as audit:
        for i in range(RECORDS):
            audit.record("guard_check", "run-1", prompt=f"q{i}", response=f"a{i}",
                         verdict=SafetyVerdict.from_flags([flag]), details={"iteration": i})
        return audit.anchor()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("check", ["no_key", "key", "anchor"])
def test_each_tamper_case_is_detected_as_the_table_says(tmp_path, case, check) -> None:
    tamper, *expected = CASES[case]
    path = tmp_path / "audit.jsonl"
    key = KEY if check == "key" else None
    anchor = _write(path, key)
    assert verify_audit_log(path, key=key).ok  # intact before
    tamper(path, key)
    report = verify_audit_log(path, key=key, anchor=anchor if check == "anchor" else None)
    detected = {"no_key": expected[0], "key": expected[1], "anchor": expected[2]}[check]
    assert report.ok is not detected, report.summary()


def test_anchor_names_truncation_and_rewrite(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = _write(path, None)
    _lines_edit(lambda lines: lines.__delitem__(slice(-3, None)))(path, None)
    report = verify_audit_log(path, anchor=anchor)
    assert report.problem.kind == "truncated" and "17 records, the anchor says 20" in report.summary()
    _write(tmp_path / "b.jsonl", None)
    _records_edit(_edit_and_rechain)(tmp_path / "b.jsonl", None)
    rewritten = verify_audit_log(tmp_path / "b.jsonl", anchor=AuditAnchor(20, anchor.head_hash))
    assert rewritten.problem.kind == "rewritten"


def test_records_appended_after_the_anchor_are_accepted(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    anchor = _write(path, None)
    with AuditLog(path) as audit:
        audit.record("run_end", "run-1")
    report = verify_audit_log(path, anchor=anchor)
    assert report.ok and report.count == RECORDS + 1 and "matches the anchor (20 records)" in report.summary()


def test_keyed_log_needs_the_key_and_the_writer_refuses_to_mix_chains(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, KEY)
    assert verify_audit_log(path).problem.kind == "key_required"
    assert verify_audit_log(path, key=FORGER_KEY).problem.kind == "altered"
    with pytest.raises(AuditIntegrityError, match="written with an audit key"):
        AuditLog(path).open()
    plain = tmp_path / "plain.jsonl"
    _write(plain, None)
    assert verify_audit_log(plain, key=KEY).problem.kind == "unkeyed"
    with pytest.raises(AuditIntegrityError, match="written without an audit key"):
        AuditLog(plain, key=KEY).open()
