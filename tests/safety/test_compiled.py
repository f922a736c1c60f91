"""The compiled guard against the plain-Python one (docs/safety.md, "Compiled modules").

Where the install compiled the guard's modules, a second process runs the same guard as plain
Python (`CLINICAL_RLHF_PURE_PYTHON=1`) and every verdict of this process must equal its verdict,
flag for flag: on the evaluation set (plain and obfuscated, each text twice, so that the second
pass takes the per-sentence memo paths), on conversations, and on hypothesis-made texts built from
the words and sentences the guard reads. Where nothing was compiled those tests skip; the choice
of modules (`clinical_rlhf.safety.compiled`) is tested everywhere.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety import compiled
from clinical_rlhf.safety.evaluation import load_cases, obfuscated_variant

# Reads one JSON request per line ({"check": [[prompt, response], ...]} or {"conversation":
# [[messages, response], ...]}) and answers with one line of verdicts.
PLAIN_GUARD = r"""
import json, sys
from clinical_rlhf.safety import SafetyGuard, compiled
guard = SafetyGuard()
print(json.dumps(compiled.status()), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if "check" in request:
        verdicts = [guard.check(prompt, response) for prompt, response in request["check"]]
    else:
        verdicts = [guard.check_conversation(messages, response) for messages, response in request["conversation"]]
    print(json.dumps([verdict.to_dict() for verdict in verdicts]), flush=True)
"""

WORDS = ["chest", "pain", "crushing", "arm", "jaw", "no", "not", "dont", "take", "with", "ibuprofen", "warfarin",
         "aspirin", "paracetamol", "methotrexate", "daily", "weekly", "500", "mg", "1", "g", "every", "4", "6",
         "hours", "twice", "a", "day", "tablets", "two", "x", "2", "do", "exceed", "no more than", "call", "999",
         "911", "just", "rest", "nothing to worry about", "year", "old", "im", "is", "5", "38", "kg", "pregnant",
         "asthma", "safe", "together", "interact", "avoid", "overdose", "took", "15 mg/kg", "q6h", "yesterday",
         "in 2019", "if", "ever", "my son", "breathing", "|", ",", ".", ". ", "!", "?", "\n", "can i", "ok",
         "c h e s t", "p41n", "ch3st", "ѕafe", "ibu\u200bprofen", "ＭＧ"]


@pytest.fixture(scope="module")
def plain_guard():
    """Verdicts of a plain-Python guard in a second process (skips where nothing is compiled)."""
    states = compiled.status()
    if "compiled" not in states.values():
        pytest.skip(f"the guard runs as plain Python here ({compiled.summary()}): nothing compiled to compare")
    env = dict(os.environ, **{compiled.PURE_PYTHON_VARIABLE: "1"})
    child = subprocess.Popen([sys.executable, "-c", PLAIN_GUARD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=env, cwd=Path(__file__).resolve().parents[2])

    def ask(kind: str, items: list) -> list[dict]:
        child.stdin.write(json.dumps({kind: items}) + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    try:
        child_states = json.loads(child.stdout.readline())
        assert "compiled" not in child_states.values(), child_states
        yield ask
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def _verdicts(guard, pairs: list[tuple[str, str]]) -> list[dict]:
    return [guard.check(prompt, response).to_dict() for prompt, response in pairs]


def test_compiled_and_plain_guards_agree_on_the_evaluation_set(guard, plain_guard) -> None:
    cases = load_cases() + load_cases(split="holdout")
    pairs = [(case.prompt, case.response) for case in cases]
    pairs += [(variant.prompt, variant.response) for variant in map(obfuscated_variant, cases)]
    # The responses again, each under another case's question: second sightings of every sentence.
    pairs += [(pairs[(number + 1) % len(pairs)][0], response) for number, (_, response) in enumerate(pairs)]
    mine = _verdicts(guard, pairs)
    assert mine == plain_guard("check", pairs)
    assert sum(verdict["action"] != "allow" for verdict in mine) > len(cases) // 2  # the set exercises every rule


def test_compiled_and_plain_guards_agree_on_conversations(guard, plain_guard) -> None:
    cases = load_cases()
    conversations = [([{"role": "user", "content": first.prompt}, {"role": "assistant", "content": first.response},
                       {"role": "user", "content": second.prompt}], second.response)
                     for first, second in zip(cases[::5], cases[3::5])]
    mine = [guard.check_conversation(messages, response).to_dict() for messages, response in conversations]
    assert mine == plain_guard("conversation", conversations)


sentences = st.lists(st.sampled_from(WORDS), min_size=1, max_size=14).map(" ".join)
texts = st.lists(sentences, min_size=1, max_size=6).map(". ".join)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(texts, texts), min_size=1, max_size=30))
def test_compiled_and_plain_guards_agree_on_made_up_texts(guard, plain_guard, pairs) -> None:
    pairs = pairs + pairs  # the second time through, repeated sentences take the memo paths
    assert _verdicts(guard, pairs) == plain_guard("check", pairs)


# -- choosing the modules (runs everywhere) ---------------------------------------------------


def _built(directory: Path, names: list[str]) -> None:
    """A source and a (stand-in) compiled file for each name."""
    for name in names:
        (directory / f"{name}.py").write_text(f"VALUE = {name!r}\n")
        (directory / f"{name}{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")


def test_a_compiled_module_is_used_only_for_the_source_it_was_built_from(tmp_path) -> None:
    _built(tmp_path, ["fresh", "edited", "unrecorded"])
    (tmp_path / "plain.py").write_text("VALUE = 1\n")  # no compiled file: plain Python anyway
    record = {"fresh": compiled.source_digest(tmp_path / "fresh.py"),
              "edited": compiled.source_digest(tmp_path / "edited.py")}
    (tmp_path / compiled.BUILD_RECORD).write_text(json.dumps({"cython": "3", "sources": record}))
    (tmp_path / "edited.py").write_text("VALUE = 'edited after the build'\n")
    needed = compiled.sources_needed(tmp_path, ["fresh", "edited", "unrecorded", "plain"], environ={})
    assert set(needed) == {"edited", "unrecorded"}
    assert "edited.py changed since it was compiled" in needed["edited"]
    assert "no build record" in needed["unrecorded"]


def test_the_environment_variable_sends_every_compiled_module_to_its_source(tmp_path) -> None:
    _built(tmp_path, ["fresh"])
    (tmp_path / compiled.BUILD_RECORD).write_text(json.dumps({"sources": {
        "fresh": compiled.source_digest(tmp_path / "fresh.py")}}))
    assert compiled.sources_needed(tmp_path, ["fresh"], environ={}) == {}
    for value in ("1", "true", "yes"):
        assert set(compiled.sources_needed(tmp_path, ["fresh"], environ={compiled.PURE_PYTHON_VARIABLE: value})) \
            == {"fresh"}
    assert compiled.sources_needed(tmp_path, ["fresh"], environ={compiled.PURE_PYTHON_VARIABLE: "0"}) == {}


def test_an_unreadable_build_record_trusts_no_compiled_module(tmp_path) -> None:
    _built(tmp_path, ["fresh"])
    (tmp_path / compiled.BUILD_RECORD).write_text("{not json")
    assert set(compiled.sources_needed(tmp_path, ["fresh"], environ={})) == {"fresh"}


def test_the_summary_says_what_this_process_runs() -> None:
    states = compiled.status()
    assert set(states) == set(compiled.COMPILED_MODULES)
    for name, state in states.items():
        module = sys.modules[f"{compiled.PACKAGE}.{name}"]
        assert (state == "compiled") == (not module.__file__.endswith(".py"))
    summary = compiled.summary()
    assert summary.startswith(("compiled (Cython)", "plain Python"))


def test_every_listed_module_exists() -> None:
    """setup.py compiles `COMPILED_MODULES` (it reads the tuple from compiled.py): each is a module
    of the package, and compiled.py itself, which decides, is not one of them."""
    directory = Path(compiled.__file__).parent
    assert all((directory / f"{name}.py").exists() for name in compiled.COMPILED_MODULES)
    assert "compiled" not in compiled.COMPILED_MODULES
