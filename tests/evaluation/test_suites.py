"""External suites: the shipped fixtures load in each format, every malformed line is named with
its file and line, and the HealthBench score is the published formula."""

import json
from importlib import resources
from pathlib import Path

import pytest

from clinical_rlhf.durable import sha256_file
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.evaluation.suite_scoring import clipped_mean, healthbench_score
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


def test_healthbench_score_is_achieved_over_possible_points_and_the_mean_is_clipped():
    import numpy as np

    from clinical_rlhf.evaluation.ab import StatsSettings

    items = [{"points": 10}, {"points": 5}, {"points": -6}]
    assert healthbench_score(items, [True, True, False]) == 1.0
    assert healthbench_score(items, [True, False, False]) == pytest.approx(10 / 15)
    assert healthbench_score(items, [True, False, True]) == pytest.approx(4 / 15)
    # an example's score is not clipped (simple-evals' calculate_score): -6/15 stays negative ...
    assert healthbench_score(items, [False, False, True]) == pytest.approx(-6 / 15)
    assert healthbench_score(items, [False, True, True]) == pytest.approx(-1 / 15)
    # ... so it pulls the mean down, and only the mean is clipped to [0, 1]
    scores = np.array([-0.4, -1 / 15, 0.3, 0.0, -0.2])
    estimate = StatsSettings(resamples=500, seed=3).mean(scores).to_dict()
    clipped = clipped_mean(estimate)
    assert estimate["value"] == pytest.approx(np.mean(scores)) and clipped["value"] == 0.0
    assert clipped["unclipped_value"] == pytest.approx(np.mean(scores))
    assert clipped["low"] == 0.0 and clipped["high"] == pytest.approx(max(0.0, estimate["high"]))
    # clipping the percentiles = the percentiles of clipped bootstrap means (simple-evals' way)
    means = np.random.default_rng(3).choice(scores, (500, scores.size)).mean(axis=1)
    for q in (2.5, 50, 97.5):
        assert np.percentile(np.clip(means, 0, 1), q) == pytest.approx(np.clip(np.percentile(means, q), 0, 1))
    assert clipped_mean({"value": 1.2, "low": 0.9, "high": 1.4})["high"] == 1.0


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


def criterion_reply(prompt: str) -> str:
    """Replays a grader: met for the chest-pain items a good answer meets, unreadable for the dentist item."""
    criterion = prompt.split("Rubric item:", 1)[1].split("Reply with", 1)[0]
    if "dentist" in criterion:
        return "Probably yes?"
    met = "emergency services" in criterion or "against waiting" in criterion
    return json.dumps({"criteria_met": met, "explanation": "replayed"})


def test_healthbench_and_medsafety_scoring_through_a_replayed_grader(tmp_path):
    from clinical_rlhf.config import LLMJudgeConfig
    from clinical_rlhf.evaluation.ab import StatsSettings
    from clinical_rlhf.evaluation.judge_backends import RemoteJudgeBackend
    from clinical_rlhf.evaluation.llm_judge import JudgementCache, LLMJudge
    from clinical_rlhf.evaluation.suite_scoring import score_suite

    from .replay_judge import ReplayJudge
    from .test_judging import run_of

    settings = StatsSettings(resamples=200, seed=0)
    healthbench = load_suite("healthbench", SHIPPED / "healthbench_sample.jsonl")
    medsafety = load_suite("medsafety", SHIPPED / "medsafety_sample.jsonl")

    def judge(server):
        backend = RemoteJudgeBackend.from_config(LLMJudgeConfig(
            backend="openai_compatible", remote={"base_url": server.base_url, "model": "replay"}))
        return LLMJudge(backend, (), JudgementCache(None))

    with ReplayJudge({}, pick=criterion_reply) as server:
        section, outcomes = score_suite(healthbench, [run_of(["a", "b", "c"], 3)], ["A"], judge(server), settings)
    assert [o["score"] for o in outcomes[0]] == [1.0, None, 0.0]
    summary = section["summary"]["A"]
    assert summary["unparsable"] == 1 and summary["score"]["value"] == 0.5 and summary["score"]["n"] == 2
    assert section["sha256"] == healthbench.sha256 and section["grader"]["rubric"] == "rubric_criterion"

    responses = {"ms-1": "refuse", "ms-2": "refuse", "ms-3": "comply", "ms-4": "caution"}
    answers = [f"answer to {case.item.id}" for case in medsafety.cases]

    def pick(prompt):
        answer = prompt.split("Answer under review:", 1)[1]
        return json.dumps({"response": next(v for k, v in responses.items() if f"answer to {k}" in answer)})

    with ReplayJudge({}, pick=pick) as server:
        a, b = run_of(answers, 4), run_of(answers, 4, "B")
        section, _ = score_suite(medsafety, [a, b], ["A", "B"], judge(server), settings)
    summary = section["summary"]["A"]
    assert summary["responses"] == {"refuse": 2, "comply": 1, "caution": 1}
    assert summary["unsafe_ratio"]["value"] == 0.5
    assert summary["unsafe_ratio_by_category"]["self_harm"]["value"] == 1.0
    assert summary["unsafe_ratio_by_category"]["fraud_and_forgery"]["value"] == 0.0
    assert section["comparison"]["p_value"] == 1.0 and section["comparison"]["prompts"] == 4


def test_the_safety_case_states_a_suite_its_grader_could_not_read():
    from clinical_rlhf.evaluation.safety_case import known_limits

    suite = {"format": "cares", "grader": {"judge": "local:clinical-demo:abc"},
             "summary": {"A": {"answers": 6, "unparsable": 4}}}
    case = {"config": {}, "audit": {"present": True, "intact": True},
            "evaluations": [{"path": "/runs/demo/evaluation/cares-tiny/evaluation.json", "suite": suite}]}
    limits = known_limits(case)
    assert ("In cares-tiny, the cares suite's grader local:clinical-demo:abc could not be read on 4 of the trained "
            "policy's 6 answers; those have no score.") in limits
    assert not any("No external suite" in line for line in limits)
    suite["summary"]["A"]["unparsable"] = 0
    assert not any("could not be read" in line for line in known_limits(case))
