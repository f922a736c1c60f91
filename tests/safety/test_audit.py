"""Hash-chained audit log: chain values, tamper detection by kind and seq, concurrency, crashes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from clinical_rlhf.safety import GENESIS_HASH, AuditLog, SafetyFlag, SafetyVerdict, canonical_json, verify_audit_log


def write(path: Path, count: int, **kwargs) -> list[dict]:
    with AuditLog(path, **kwargs) as audit:
        return [audit.record("guard_check", "run-1", prompt=f"q{i}", response=f"a{i}", details={"i": i})
                for i in range(count)]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_hash_is_sha256_of_previous_hash_and_canonical_record(tmp_path) -> None:
    first, second = write(tmp_path / "a.jsonl", 2)
    body = {k: v for k, v in first.items() if k != "hash"}
    expected = hashlib.sha256(f"{GENESIS_HASH}\n{canonical_json(body)}".encode()).hexdigest()
    assert first["hash"] == expected and first["prev_hash"] == GENESIS_HASH
    assert second["prev_hash"] == first["hash"] and (first["seq"], second["seq"]) == (1, 2)
    assert first["prompt_sha256"] == hashlib.sha256(b"q0").hexdigest()
    assert "prompt_text" not in first and first["time"].endswith("+00:00")


def test_intact_log_verifies_with_count_and_head(tmp_path) -> None:
    records = write(tmp_path / "a.jsonl", 5)
    report = verify_audit_log(tmp_path / "a.jsonl")
    assert report.ok and report.count == 5 and report.head_hash == records[-1]["hash"]


def test_writer_resumes_the_chain_across_reopens(tmp_path) -> None:
    write(tmp_path / "a.jsonl", 3)
    more = write(tmp_path / "a.jsonl", 2)
    assert [r["seq"] for r in more] == [4, 5]
    assert verify_audit_log(tmp_path / "a.jsonl").count == 5


def _tamper(path: Path, edit) -> None:
    content = lines(path)
    edit(content)
    path.write_text("".join(content), encoding="utf-8")


def _alter(content: list[str]) -> None:
    record = json.loads(content[2])
    record["actor"] = "someone-else"
    content[2] = json.dumps(record) + "\n"


def _forge(content: list[str]) -> None:
    previous = json.loads(content[1])
    forged = {**json.loads(content[2]), "actor": "forger", "prev_hash": previous["hash"], "seq": 3}
    forged["hash"] = hashlib.sha256(f"{previous['hash']}\n"
                                    f"{canonical_json({k: v for k, v in forged.items() if k != 'hash'})}"
                                    .encode()).hexdigest()
    content.insert(2, json.dumps(forged) + "\n")


@pytest.mark.parametrize(("edit", "kind", "seq"), [
    (_alter, "altered", 3),
    (lambda c: c.pop(2), "deleted", 3),
    (lambda c: c.__setitem__(slice(2, 4), [c[3], c[2]]), "reordered", 3),
    (_forge, "inserted", 3),
    (lambda c: c.append('{"seq": 7, "ti'), "torn_tail", 7),
    (lambda c: c.insert(1, "not json\n"), "malformed", 2),
])
def test_first_problem_is_reported_with_its_kind_and_seq(tmp_path, edit, kind, seq) -> None:
    path = tmp_path / "a.jsonl"
    write(path, 6)
    _tamper(path, edit)
    report = verify_audit_log(path)
    assert not report.ok
    assert (report.problem.kind, report.problem.seq) == (kind, seq), report.summary()


def test_torn_tail_is_moved_aside_recorded_and_the_chain_continues(tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    write(path, 3)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"seq": 4, "event": "guard_ch')  # a crash in the middle of a write
    assert verify_audit_log(path).problem.kind == "torn_tail"
    resumed = write(path, 1)
    report = verify_audit_log(path)
    assert report.ok and report.count == 5 and report.recoveries == 1
    recovery = json.loads(lines(path)[3])
    assert recovery["event"] == "audit_recovered" and recovery["seq"] == 4
    assert (tmp_path / recovery["details"]["saved_to"]).read_text() == '{"seq": 4, "event": "guard_ch'
    assert resumed[0]["seq"] == 5


def test_threads_share_one_writer_without_forking_the_chain(tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    with AuditLog(path, fsync="never") as audit:
        def work() -> None:
            for i in range(100):
                audit.record("alert", "thread", details={"i": i})
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report = verify_audit_log(path)
    assert report.ok and report.count == 800


def _process_writer(path: str, count: int) -> None:
    with AuditLog(path, fsync="batch") as audit:
        for i in range(count):
            audit.record("checkpoint", f"pid-{multiprocessing.current_process().pid}", details={"i": i})


def test_processes_append_whole_records_to_one_chain(tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_process_writer, args=(str(path), 60)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    report = verify_audit_log(path)
    assert report.ok and report.count == 240, report.summary()


def test_raw_text_is_stored_only_when_asked_and_scrubbed(tmp_path) -> None:
    verdict = SafetyVerdict.from_flags([SafetyFlag("dosage", "exceeds_daily_max", "high", "8 g")])
    with AuditLog(tmp_path / "a.jsonl", store_raw_text=True) as audit:
        record = audit.record("guard_check", "api-key-7", prompt="I'm jo@example.com, DOB 01/02/1980",
                              response="Call 07700 900123", verdict=verdict)
    assert record["prompt_text"] == "I'm [EMAIL], [DATE_OF_BIRTH]"
    assert record["response_text"] == "Call [PHONE]"
    assert record["verdict"]["flags"][0]["subtype"] == "exceeds_daily_max"


def test_bad_arguments_are_value_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        AuditLog(tmp_path / "a.jsonl", fsync="sometimes")  # type: ignore[arg-type]
    with AuditLog(tmp_path / "a.jsonl") as audit, pytest.raises(ValueError, match="actor"):
        audit.record("run_start", "")


def _flagged(evidence: str) -> SafetyVerdict:
    flag = SafetyFlag("red_flag", "stroke", "critical", evidence, (4, 4 + len(evidence)), "prompt", "red_flag:stroke",
                      "escalate")
    return SafetyVerdict.from_flags([flag])


def test_without_raw_text_flag_evidence_is_a_hash_with_rule_and_span(tmp_path) -> None:
    evidence = "John Smith face drooping"
    with AuditLog(tmp_path / "a.jsonl") as audit:
        record = audit.record("guard_check", "run-1", prompt="q", verdict=_flagged(evidence))
    written = (tmp_path / "a.jsonl").read_text(encoding="utf-8")
    assert "John Smith" not in written and "drooping" not in written
    [flag] = record["verdict"]["flags"]
    assert flag["evidence_sha256"] == hashlib.sha256(evidence.encode()).hexdigest()
    assert flag["rule_id"] == "red_flag:stroke" and flag["span"] == [4, 4 + len(evidence)] and "evidence" not in flag
    assert verify_audit_log(tmp_path / "a.jsonl").ok


def test_with_raw_text_flag_evidence_is_phi_scrubbed(tmp_path) -> None:
    with AuditLog(tmp_path / "a.jsonl", store_raw_text=True) as audit:
        record = audit.record("guard_check", "run-1", prompt="q", verdict=_flagged("call 555-123-4567 now"))
    assert record["verdict"]["flags"][0]["evidence"] == "call [PHONE] now"
    assert "555-123-4567" not in (tmp_path / "a.jsonl").read_text(encoding="utf-8")


def test_a_garbage_last_line_is_one_clear_error_and_nothing_is_cut(tmp_path) -> None:
    from clinical_rlhf.errors import AuditIntegrityError

    path = tmp_path / "a.jsonl"
    write(path, 2)
    for garbage in (b"not a record\n", b"not a record\n{\"seq\": 3, \"torn"):
        content = path.read_bytes().split(b"not a record")[0] + garbage
        path.write_bytes(content)
        with pytest.raises(AuditIntegrityError, match="last line is not an audit record"):
            AuditLog(path).open()
        assert path.read_bytes() == content  # the torn piece is not cut off a log it cannot continue


def test_a_key_variable_that_is_not_utf8_is_its_own_bytes() -> None:
    from clinical_rlhf.safety.audit_key import load_audit_key

    # os.environ holds undecodable bytes as surrogates (PEP 383); the key is the original bytes.
    assert load_audit_key(environ={"KEY": "\udcff\udcfe" + "k" * 20}, key_env="KEY") == b"\xff\xfe" + b"k" * 20
