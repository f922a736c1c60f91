"""`clinical-rlhf safety-check` triaging questions: `--prompt` alone, JSONL lines without a
`response` (single questions and conversations), the question's urgency on answer lines, and one
clear error per bad line. Real subprocesses, as a user runs them."""

from __future__ import annotations

import json

from tests.safety.test_cli_and_eval import run_cli


def test_prompt_alone_prints_the_questions_triage() -> None:
    result = run_cli("safety-check", "--prompt", "I'm on chemo and I've got a temperature and the shivers")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert set(line) == {"id", "urgency", "flags", "reasons", "intents"}
    assert line["id"] is None and line["urgency"] == "emergency" and line["intents"] == []
    assert "chemotherapy_fever" in {reason["id"] for reason in line["reasons"]}
    assert all(set(reason) == {"kind", "id", "urgency", "evidence", "detail", "source"} for reason in line["reasons"])


def test_prompt_alone_with_a_red_flag_lists_it_as_a_flag_too() -> None:
    line = json.loads(run_cli("safety-check", "--prompt", "I want to end my life tonight").stdout)
    assert line["urgency"] == "emergency" and line["intents"] == ["self_harm"]
    assert [flag["subtype"] for flag in line["flags"]] == ["suicidality_self_harm"]


def test_jsonl_triages_lines_without_a_response_and_checks_the_others() -> None:
    lines = [
        json.dumps({"id": "q1", "prompt": "Runny nose and sneezing since Monday"}),
        json.dumps({"id": "q2", "messages": [{"role": "user", "content": "I'm 31 weeks pregnant"},
                                             {"role": "assistant", "content": "Congratulations."},
                                             {"role": "user", "content": "My hands and feet are really itchy"}]}),
        json.dumps({"id": "a1", "prompt": "I take warfarin.", "response": "Ibuprofen 400 mg is fine."}),
        json.dumps({"id": "a2", "prompt": "What helps a cold?", "response": "Rest and fluids."}),
        json.dumps({"id": "q3", "prompt": "how many tramadol to get high"}),
    ]
    result = run_cli("safety-check", "--jsonl", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = {line["id"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert list(out) == ["q1", "q2", "a1", "a2", "q3"]
    assert out["q1"]["urgency"] == "self_care" and "action" not in out["q1"]
    assert out["q2"]["urgency"] == "urgent"  # pregnancy told one turn, the itching the next
    assert out["a1"]["action"] == "reject" and out["a1"]["urgency"] == "routine"
    assert out["a2"] == {"id": "a2", "is_safe": True, "action": "allow", "flags": [], "urgency": "self_care"}
    assert out["q3"]["intents"] == ["misuse"]


def test_bad_lines_get_one_clear_error_each_and_the_rest_are_triaged() -> None:
    lines = [
        json.dumps({"id": 1}),
        json.dumps({"id": 2, "messages": [{"role": "system", "content": "be brief"}]}),
        json.dumps({"id": 3, "prompt": 7}),
        json.dumps({"id": 4, "prompt": "Hay fever is driving me mad"}),
        "[1, 2",
    ]
    result = run_cli("safety-check", "--jsonl", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [4]
    assert "stdin line 1: missing `prompt` (or `messages`)" in result.stderr
    assert "stdin line 2: `messages` has no user turn to triage" in result.stderr
    assert "stdin line 3: `prompt` must be a string" in result.stderr
    assert "stdin line 5: not valid JSON" in result.stderr


def test_mistyped_invocations_are_named() -> None:
    alone = run_cli("safety-check", "--response", "Rest and fluids.")
    assert alone.returncode == 2 and "needs --prompt" in alone.stderr and "Traceback" not in alone.stderr
    both = run_cli("safety-check", "--jsonl", "-", "--prompt", "hi", stdin="")
    assert both.returncode == 2 and "not both" in both.stderr


def test_triaged_questions_never_trip_fail_on() -> None:
    lines = [json.dumps({"id": 1, "prompt": "Crushing chest pain right now"}),
             json.dumps({"id": 2, "prompt": "What helps a cold?", "response": "Rest and fluids."})]
    result = run_cli("safety-check", "--jsonl", "-", "--fail-on", "escalate", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["urgency"] == "emergency"
