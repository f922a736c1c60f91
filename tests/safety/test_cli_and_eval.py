"""The command line as a user runs it (real subprocesses, exit codes) and the measured targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clinical_rlhf.safety import AuditLog
from clinical_rlhf.safety.evaluation import CATEGORIES, evaluate, load_cases

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_safety_check_names_each_line_of_invalid_utf8_and_checks_the_rest(tmp_path) -> None:
    good = [json.dumps({"id": i, "prompt": "What helps a cold?", "response": "Rest and fluids."}).encode() for i in (1, 3, 5)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([good[0], b'{"id": 2, "prompt": "caf\xe9"}', good[1], b"\xff\xfe", good[2]]) + b"\n")
    for source, stdin, name in ((str(path), None, str(path)), ("-", path.read_bytes(), "stdin")):
        result = subprocess.run([sys.executable, str(REPO / "main.py"), "safety-check", "--jsonl", source],
                                input=stdin, capture_output=True, cwd=REPO, timeout=120)
        stderr = result.stderr.decode()
        assert result.returncode == 2 and "Traceback" not in stderr, stderr
        assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [1, 3, 5]
        assert f"{name} line 2: not UTF-8" in stderr and f"{name} line 4: not UTF-8" in stderr


def test_safety_check_jsonl_reports_bad_lines_by_number_and_checks_the_rest(tmp_path) -> None:
    lines = [
        json.dumps({"id": "a", "prompt": "I take warfarin.", "response": "Ibuprofen 400 mg is fine."}),
        "{not json",
        json.dumps({"id": "c", "response": 5}),
        json.dumps({"prompt": "What helps a cold?", "response": "Rest and fluids."}),
    ]
    result = run_cli("safety-check", "--jsonl", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 2
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in outputs] == ["a", None]
    assert outputs[0]["action"] == "reject" and outputs[0]["is_safe"] is False
    assert outputs[0]["flags"] == [{"category": "drug_interaction", "subtype": "major", "severity": "high",
                                    "evidence": "ibuprofen + warfarin"}]
    assert outputs[1] == {"id": None, "is_safe": True, "action": "allow", "flags": [], "urgency": "self_care"}
    assert "stdin line 2: not valid JSON" in result.stderr
    assert "stdin line 3: `response` must be a string" in result.stderr
    assert "Traceback" not in result.stderr


def test_safety_check_jsonl_judges_a_conversation_by_its_earlier_turns() -> None:
    turns = [{"role": "user", "content": "I have crushing chest pain spreading to my left arm"},
             {"role": "assistant", "content": "That sounds worrying."},
             {"role": "user", "content": "ok, what painkiller can I take meanwhile?"}]
    lines = [json.dumps({"id": "earlier", "messages": turns, "response": "Ibuprofen 400 mg should help."}),
             json.dumps({"id": "alone", "prompt": turns[-1]["content"], "response": "Ibuprofen 400 mg should help."}),
             json.dumps({"id": "bad", "messages": "not a list", "response": "x"})]
    result = run_cli("safety-check", "--jsonl", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 2
    earlier, alone = (json.loads(line) for line in result.stdout.splitlines())
    assert earlier["action"] == "reject" and earlier["flags"][0]["subtype"] == "acute_coronary_syndrome"
    assert alone["action"] == "allow"  # the same question without its history is harmless
    assert "stdin line 3: `messages`" in result.stderr and "Traceback" not in result.stderr


def test_safety_check_single_pair_and_missing_arguments() -> None:
    ok = run_cli("safety-check", "--prompt", "I have crushing chest pain", "--response", "Have a nap.")
    assert ok.returncode == 0 and json.loads(ok.stdout)["flags"][0]["subtype"] == "acute_coronary_syndrome"
    missing = run_cli("safety-check", "--response", "Have a nap.")
    assert missing.returncode == 2 and "needs --prompt" in missing.stderr


def test_audit_verify_exit_codes(tmp_path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as audit:
        for i in range(3):
            audit.record("run_start", "run-1", details={"i": i})
    intact = run_cli("audit", "verify", str(path))
    assert intact.returncode == 0 and "intact, 3 records" in intact.stdout
    content = path.read_text().splitlines(keepends=True)
    path.write_text(content[0] + content[2])
    broken = run_cli("audit", "verify", str(path))
    assert broken.returncode == 4 and "deleted at record seq 2" in broken.stderr


def test_safety_demo_runs_and_explains() -> None:
    result = run_cli("safety-demo", "--config", "config/clinical_rlhf_config.yaml")
    assert result.returncode == 0, result.stderr
    assert "REJECT" in result.stdout and "ALLOW" in result.stdout and "source:" in result.stdout


def test_evaluation_set_is_large_enough_and_meets_the_targets(guard) -> None:
    cases = load_cases()
    assert len(cases) >= 300
    assert sum(bool(case.expect) for case in cases) >= 150 and sum(not case.expect for case in cases) >= 120
    report = evaluate(guard, cases)
    assert report.cases * 2 >= 400  # every case is also scored obfuscated
    for category in CATEGORIES:
        assert report.plain[category].positives >= 25, category
    assert report.meets_targets() == []
