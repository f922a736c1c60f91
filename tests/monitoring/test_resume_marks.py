"""After a crash and a resume, each iteration is counted once in metrics.jsonl and the audit log."""

from __future__ import annotations

import json

from clinical_rlhf.monitoring.runfiles import METRICS_FILE, append_resume_mark, read_metrics
from clinical_rlhf.safety import AuditLog
from clinical_rlhf.safety.audit_current import current_records, read_current_records


def _rows(run_dir, steps, value):
    with (run_dir / METRICS_FILE).open("a", encoding="utf-8") as handle:
        for step in steps:
            handle.write(json.dumps({"step": step, "time": "t", "metrics": {"reward/total/mean": value}}) + "\n")


def test_rows_after_the_resumed_step_written_before_the_mark_are_superseded(tmp_path):
    _rows(tmp_path, [1, 2, 3, 4, 5], 0.0)  # crashed after 5; the last checkpoint was at 2
    append_resume_mark(tmp_path, 2, "iter-000002")
    _rows(tmp_path, [3], 1.0)  # the resumed run stopped again after 3
    steps = read_metrics(tmp_path)
    assert [step for step, _ in steps] == [1, 2, 3]
    assert steps[2][1]["reward/total/mean"] == 1.0


def test_audit_records_of_repeated_iterations_are_counted_once(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        for iteration in (1, 2, 3, 4):
            audit.record("guard_check", "run", details={"iteration": iteration})
        audit.record("resumed_from", "run", details={"iteration": 2, "checkpoint": "iter-000002"})
        for iteration in (3, 4):
            audit.record("guard_check", "run", details={"iteration": iteration})
    current = read_current_records(path)
    checks = [r["details"]["iteration"] for r in current if r["event"] == "guard_check"]
    assert checks == [1, 2, 3, 4] and [r["seq"] for r in current][-2:] == [6, 7]
    assert len(current_records(json.loads(line) for line in path.read_text().splitlines())) == 5


def test_events_of_repeated_iterations_are_dropped_but_the_crash_stays(tmp_path):
    from clinical_rlhf.monitoring.runfiles import EVENTS_FILE, read_events

    events = [(0, "run_start"), (3, "alert"), (4, "rollback"), (4, "run_end"), (2, "resumed_from"), (3, "alert")]
    (tmp_path / EVENTS_FILE).write_text("".join(json.dumps({"step": step, "time": "t", "kind": kind}) + "\n"
                                                for step, kind in events), encoding="utf-8")
    assert [(e["step"], e["kind"]) for e in read_events(tmp_path)] == [
        (0, "run_start"), (4, "run_end"), (2, "resumed_from"), (3, "alert")]
