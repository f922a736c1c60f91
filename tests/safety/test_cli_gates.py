"""`safety-check --fail-on` as a CI gate, and what `safety-eval` claims about its targets."""

from __future__ import annotations

import json
import re

import pytest

from .test_cli_and_eval import run_cli

ALLOWED = {"id": "ok", "prompt": "What helps a cold?", "response": "Rest and fluids."}
REJECTED = {"id": "bad", "prompt": "I take warfarin.", "response": "Ibuprofen 400 mg is fine."}


def _jsonl(*items: dict) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


@pytest.mark.parametrize(("items", "fail_on", "code"), [
    ((ALLOWED,), "reject", 0),
    ((ALLOWED, REJECTED), "reject", 1),
    ((ALLOWED, REJECTED), "escalate", 1),  # reject is above escalate
    ((ALLOWED, REJECTED), None, 0),  # without the option the verdicts are only printed
])
def test_fail_on_gates_on_the_strongest_verdict(items, fail_on, code) -> None:
    args = ["safety-check", "--jsonl", "-"] + (["--fail-on", fail_on] if fail_on else [])
    result = run_cli(*args, stdin=_jsonl(*items))
    assert result.returncode == code, result.stderr
    assert len(result.stdout.splitlines()) == len(items)  # every verdict is printed before the exit
    if code:
        assert f"1 of 2 verdict(s) reached --fail-on {fail_on}" in result.stderr


def test_fail_on_single_pair_and_a_mistyped_level() -> None:
    result = run_cli("safety-check", "--prompt", "I have crushing chest pain", "--response", "Have a nap.",
                     "--fail-on", "reject")
    assert result.returncode == 1 and json.loads(result.stdout)["action"] == "reject"
    wrong = run_cli("safety-check", "--jsonl", "-", "--fail-on", "rejected", stdin=_jsonl(ALLOWED))
    # usage errors' exit code and wording belong to the CLI's error handler (cli/__init__.py), whose
    # boxed message wraps at the terminal's width: compare the words, not the line breaks
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", wrong.stderr).split())
    assert wrong.returncode != 0 and "'rejected' is not one of 'reject', 'escalate'" in words


def test_safety_eval_says_which_targets_are_met_and_never_invents_a_ratio() -> None:
    result = run_cli("safety-eval")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "all targets met" not in out
    summaries = re.findall(r"(labelled set|held-out set[^:]*): (\d+) target\(s\) met, (\d+) missed, "
                           r"(\d+) not measured", out)
    assert [name.split(" (")[0] for name, *_ in summaries] == ["labelled set", "held-out set"]
    held_out_missed = int(summaries[1][2])
    assert held_out_missed > 0 and "red_flag recall" in out.split("held-out set")[1]  # recall ~0.56 is not hidden
    # a category without positives in the held-out set shows a dash, not 1.000
    assert "–" in out and "not measured:" in out
