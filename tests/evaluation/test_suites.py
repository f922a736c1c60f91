"""External suites: the shipped fixtures load in each format, every malformed line is named with
its file and line, and the HealthBench score is the published formula."""

import json
from importlib import resources
from pathlib import Path

import pytest

from clinical_rlhf.durable import sha256_file
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.evaluation.suite_scoring import healthbench_score
from clinical_rlhf.evaluation.suites import load_suite, parse_suite_spec

SHIPPED = Path(str(resources.files("clinical_rlhf") / "data" / "suites"))


def test_the_shipped_fixtures_load_with_their_hash():
    healthbench = load_suite("healthbench", SHIPPED / "healthbench_sample.jsonl")
    assert len(healthbench.cases) == 3 and healthbench.sha256 == sha256_file(healthbench.path)
    conversation = healthbench.cases[2]
    assert conversation.item.is_conversation and conversation.item.question.startswith("Can I take ibuprofen")
    assert [r["points"] for r in conversation.rubric_items] == [8.0, 4.0, -9.0]
    medsafety = load_suite("medsafety", SHIPPED / "medsafety_sample.jsonl")
    assert {c.category for c in medsafety.cases} >= {"self_harm", "fraud_and_forgery"}
    cares = load_suite("cares", SHIPPED / "cares_sample.jsonl")
    assert [c.label for c in cares.cases].count("refuse") == 2
    assert {c.item.source for c in cares.cases} == {"suite:cares"}


def test_healthbench_score_is_achieved_over_possible_points_clipped():
    items = [{"points": 10}, {"points": 5}, {"points": -6}]
    assert healthbench_score(items, [True, True, False]) == 1.0
    assert healthbench_score(items, [True, False, False]) == pytest.approx(10 / 15)
    assert healthbench_score(items, [True, False, True]) == pytest.approx(4 / 15)
    assert healthbench_score(items, [False, False, True]) == 0.0  # -6/15 clipped at zero
    assert healthbench_score(items, [False, True, True]) == 0.0


GOOD_HB = {"prompt": [{"role": "user", "content": "hi"}], "rubrics": [{"criterion": "greets", "points": 1}]}


@pytest.mark.parametrize("kind, line, message", [
    ("healthbench", "{not json", r"2: not valid JSON"),
    ("healthbench", json.dumps({**GOOD_HB, "prompt": "hi"}), r'2: "prompt" must be a list'),
    ("healthbench", json.dumps({**GOOD_HB, "rubrics": []}), r'2: "rubrics" must be a non-empty list'),
    ("healthbench", json.dumps({**GOOD_HB, "rubrics": [{"criterion": "x", "points": True}]}),
     r'2: "rubrics\[0\].points" must be a non-zero number'),
    ("healthbench", json.dumps({**GOOD_HB, "rubrics": [{"criterion": "x", "points": -3}]}),
     r"2: no rubric item with positive points"),
    ("healthbench", json.dumps({**GOOD_HB, "prompt": [{"role": "assistant", "content": "x"}]}),
     r"2: the conversation must end with a non-empty user turn"),
    ("medsafety", json.dumps({"request": "x"}), r'2: "category" must be a non-empty string'),
    ("medsafety", json.dumps({"prompt": "x", "category": "y"}), r'2: "request" must be a non-empty string'),
    ("cares", json.dumps({"prompt": "x", "label": "maybe"}), r'2: "label" must be one of accept, caution, refuse'),
    ("cares", json.dumps(["x"]), r"2: found a JSON list, not an object"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, kind, line, message):
    first = {"healthbench": json.dumps(GOOD_HB), "medsafety": json.dumps({"request": "r", "category": "c"}),
             "cares": json.dumps({"prompt": "p", "label": "accept"})}[kind]
    path = tmp_path / "suite.jsonl"
    path.write_text(first + "\n" + line + "\n")
    with pytest.raises(InputDataError, match=f"suite.jsonl:{message}"):
        load_suite(kind, path)


def test_specs_missing_files_and_duplicates(tmp_path):
    assert parse_suite_spec("cares:data/x.jsonl") == ("cares", Path("data/x.jsonl"))
    for spec in ("healthbench", "mmlu:x.jsonl", "cares:"):
        with pytest.raises(InputDataError, match="expected FORMAT:PATH with FORMAT one of healthbench, medsafety, cares"):
            parse_suite_spec(spec)
    with pytest.raises(InputDataError, match="not found"):
        load_suite("cares", tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputDataError, match="holds no cases"):
        load_suite("cares", tmp_path / "empty.jsonl")
    line = json.dumps({"id": "a", "prompt": "p", "label": "accept"})
    (tmp_path / "twice.jsonl").write_text(line + "\n" + line + "\n")
    with pytest.raises(InputDataError, match=r"twice.jsonl:2: duplicate id 'a' \(first on line 1\)"):
        load_suite("cares", tmp_path / "twice.jsonl")
