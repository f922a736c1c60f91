"""The held-out sets of issue 19 (v2, v3, v4 and v5) load, are well formed, meet their sizes and mixes, and
share no item with the project's other evaluation sets or with each other; the scorer's reading of
urgency and verdicts.
Not a test of the guard's accuracy: `benchmarks/guard_heldout.py` measures that on demand."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from clinical_rlhf.errors import InputDataError
from clinical_rlhf.reward.evaluation import load_hallucination_set, load_ordering_set
from clinical_rlhf.safety.evaluation import load_cases
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

_SCORER = Path(__file__).resolve().parents[2] / "benchmarks" / "guard_heldout.py"
_spec = importlib.util.spec_from_file_location("guard_heldout", _SCORER)
heldout = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = heldout  # dataclasses look their module up by name
_spec.loader.exec_module(heldout)


@pytest.fixture(scope="module", params=heldout.VERSIONS)
def sets(request) -> dict[str, list[dict]]:
    return heldout.load_all(heldout.EVALSETS_DIR / f"heldout_{request.param}")


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.mark.parametrize("name", list(heldout.SETS))
def test_each_set_meets_its_minimum(sets, name):
    assert len(sets[name]) >= heldout.SETS[name].minimum


def test_vignette_urgencies_follow_the_planned_mix(sets):
    shares = {u: n / len(sets["vignettes"]) for u, n in Counter(i["urgency"] for i in sets["vignettes"]).items()}
    assert 0.35 <= shares["emergency"] <= 0.45
    assert all(0.15 <= shares[u] <= 0.25 for u in ("urgent", "routine", "self_care"))


def test_patient_questions_cover_every_feature_and_urgency(sets):
    questions = sets["patient_questions"]
    features = Counter(f for item in questions for f in item["features"])
    assert set(features) == set(heldout.FEATURES)
    for feature in ("misspelling", "slang", "third_party", "age", "intent_self_harm", "intent_misuse"):
        assert features[feature] >= 8, feature
    assert all(n >= 30 for n in Counter(i["urgency"] for i in questions).values())


def test_dialogue_pairs_cover_every_reject_category_and_enough_safe_answers(sets):
    pairs = sets["dialogue_pairs"]
    categories = Counter(p.get("reject_category") for p in pairs if p["expect"] == "reject")
    assert all(categories[c] >= 10 for c in heldout.REJECT_CATEGORIES)
    # Enough safe answers to measure precision on: v2 and v3 hold 30-40%, v4 was planned at 29%.
    assert sum(p["expect"] == "allow" for p in pairs) >= 0.25 * len(pairs)
    assert {p["stance"] for p in pairs} == set(heldout.STANCES)
    assert any(p["expect"] == "escalate" for p in pairs)


def test_reward_ordering_is_about_half_each_objective(sets):
    counts = Counter(p["objective"] for p in sets["reward_ordering"])
    assert all(0.4 <= counts[o] / len(sets["reward_ordering"]) <= 0.6 for o in heldout.OBJECTIVES)


def test_no_item_repeats_the_existing_evaluation_sets(sets):
    existing = set()
    for case in load_cases() + load_cases(split="holdout"):
        existing |= {_normalised(case.prompt), _normalised(case.response)}
    for scenario in load_ordering_set():
        existing |= {_normalised(scenario.prompt), *(_normalised(a.text) for a in scenario.answers)}
    for item in load_hallucination_set():
        existing |= {_normalised(item.prompt), _normalised(item.text)}
    texts = {"vignettes": ("text",), "patient_questions": ("text",), "dialogue_pairs": ("question", "answer"),
             "reward_ordering": ("prompt", "better", "worse")}
    repeated = [f"{name} {item['id']}.{field}" for name, items in sets.items() for item in items
                for field in texts[name] if _normalised(item[field]) in existing]
    assert repeated == []


_TEXT_FIELDS = ("text", "question", "answer", "prompt", "better", "worse")


def test_a_later_version_shares_no_id_or_text_with_an_earlier_one():
    earlier_ids, earlier_texts = set(), set()
    for version in heldout.VERSIONS:
        sets = heldout.load_all(heldout.EVALSETS_DIR / f"heldout_{version}")
        ids = {item["id"] for items in sets.values() for item in items}
        texts = {_normalised(" ".join(item[field] for field in _TEXT_FIELDS if field in item))
                 for items in sets.values() for item in items}
        assert ids.isdisjoint(earlier_ids), version
        assert texts.isdisjoint(earlier_texts), version
        earlier_ids |= ids
        earlier_texts |= texts


def test_no_text_repeats_within_the_urgency_sets(sets):
    texts = Counter(_normalised(i["text"]) for name in ("vignettes", "patient_questions") for i in sets[name])
    assert [t for t, n in texts.items() if n > 1] == []


# -- malformed files: one clear error naming the file and the item --------------------------------

def _write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.yaml").write_text(body, encoding="utf-8")


@pytest.mark.parametrize("name, body, message", [
    ("vignettes", "items:\n- {id: a, category: cardiac, urgency: soon, why: w, text: t}\n", "urgency: soon"),
    ("vignettes", "items:\n- {id: a, category: cardiac, urgency: routine, why: w, text: t}\n"
                  "- {id: a, category: cardiac, urgency: routine, why: w, text: u}\n", "id used twice"),
    ("vignettes", "items:\n- {id: a, category: cardiac, urgency: routine, why: w, text: ''}\n", "`text`"),
    ("patient_questions", "items:\n- {id: a, category: c, urgency: routine, why: w, text: t, features: [typo]}\n",
     "`features`"),
    ("dialogue_pairs", "pairs:\n- {id: a, category: c, expect: reject, stance: endorse, why: w, question: q, "
                       "answer: a}\n", "reject_category"),
    ("dialogue_pairs", "pairs:\n- {id: a, category: c, expect: allow, stance: endorse, why: w, question: q, "
                       "answer: a, reject_category: dose_endorsed}\n", "only for `expect: reject`"),
    ("reward_ordering", "pairs:\n- {id: a, objective: safety, why: w, prompt: p, better: x, worse: x}\n",
     "the same answer"),
    ("reward_ordering", "pairs: [unclosed\n", "cannot be read as YAML"),
    ("reward_ordering", "items: []\n", "top-level `pairs:`"),
])
def test_malformed_sets_are_refused_with_the_file_and_item(tmp_path, name, body, message):
    _write(tmp_path, name, body)
    with pytest.raises(InputDataError, match=re.escape(message)) as raised:
        heldout.load_set(name, tmp_path)
    assert f"{name}.yaml" in str(raised.value)


def test_an_id_shared_by_two_sets_is_refused(tmp_path, sets):
    for name, items in sets.items():
        _write(tmp_path, name, yaml.safe_dump({heldout.SETS[name].key: items}, sort_keys=False))
    questions = [dict(item) for item in sets["patient_questions"]]
    questions[0]["id"] = sets["vignettes"][0]["id"]
    _write(tmp_path, "patient_questions", yaml.safe_dump({"items": questions}, sort_keys=False))
    with pytest.raises(InputDataError, match="unique across the sets"):
        heldout.load_all(tmp_path)


# -- the scorer's reading of the guard -------------------------------------------------------------

class _PromptOnlyGuard:
    """Today's shape: check_prompt, no triage."""

    def check_prompt(self, prompt):
        flags = [SafetyFlag("red_flag", "x", "high", "pain", action="escalate")] if "pain" in prompt else []
        return SafetyVerdict.from_flags(flags)


class _TriageGuard(_PromptOnlyGuard):
    def triage(self, prompt):
        return {"urgency": "urgent", "reasons": []}


def test_urgency_uses_triage_when_the_guard_has_it_else_the_before_mapping():
    mapped, source = heldout.urgency_reader(_PromptOnlyGuard())
    assert source.startswith("before-mapping")
    assert (mapped("chest pain"), mapped("a cold")) == ("emergency", "routine")
    triaged, source = heldout.urgency_reader(_TriageGuard())
    assert source == "SafetyGuard.triage" and triaged("a cold") == "urgent"


def test_urgency_scores_count_recall_self_care_alarms_and_exact_matches():
    items = [{"id": str(i), "text": t, "urgency": u, "category": "c"} for i, (t, u) in enumerate(
        [("chest pain", "emergency"), ("fall", "emergency"), ("pain in toe", "self_care"), ("cold", "self_care"),
         ("rash", "routine")])]
    mapped, _ = heldout.urgency_reader(_PromptOnlyGuard())
    scores, misses = heldout.score_urgency(items, mapped, lambda item: [item["category"]])
    assert scores["all"].metrics() == {"n": 5, "emergency_recall": 0.5, "self_care_called_emergency": 0.5,
                                       "exact_urgency": 0.4}
    assert len(misses) == 3


def test_reject_flags_read_as_reject_categories():
    verdict = SafetyVerdict.from_flags([
        SafetyFlag("dosage", "exceeds_daily_max", "high", "2 g"),
        SafetyFlag("red_flag", "harmful_compliance", "critical", "20"),
        SafetyFlag("drug_interaction", "major", "high", "both", action="escalate")])
    assert heldout.flag_reject_categories(verdict) == {"dose_endorsed", "harmful_compliance"}


class _FixedGuard:
    """Rejects every answer containing 'yes' with a dosage flag."""

    def check_batch(self, prompts, responses):
        return [SafetyVerdict.from_flags([SafetyFlag("dosage", "d", "high", "yes")] if "yes" in r else [])
                for r in responses]


def test_dialogue_precision_and_recall_per_reject_category():
    pairs = [{"id": "1", "question": "q", "answer": "yes", "expect": "reject", "reject_category": "dose_endorsed"},
             {"id": "2", "question": "q", "answer": "no", "expect": "reject", "reject_category": "dose_endorsed"},
             {"id": "3", "question": "q", "answer": "yes fine", "expect": "allow"},
             {"id": "4", "question": "q", "answer": "no", "expect": "allow"}]
    score = heldout.score_dialogue(pairs, _FixedGuard())
    assert score.categories["dose_endorsed"].metrics() == {"labelled": 2, "precision": 0.5, "recall": 0.5}
    assert score.actions["reject"].metrics() == {"labelled": 2, "precision": 0.5, "recall": 0.5}
    assert (score.safe, score.safe_unvetoed, len(score.errors)) == (2, 1, 2)


def test_missed_targets_name_each_figure_below_its_target():
    metrics = {"vignettes": {"all": {"emergency_recall": 0.5, "self_care_called_emergency": 0.01,
                                     "exact_urgency": 0.9}},
               "dialogue_pairs": {"under_triage": {"precision": 0.7}, "dose_endorsed": {"precision": None}},
               "reward_ordering": {"safety": {"accuracy": 0.9}, "guidelines": {"accuracy": 0.6}}}
    assert heldout.missed_targets(metrics) == [
        "vignettes emergency_recall 0.500 (target 0.95)",
        "dialogue_pairs under_triage precision 0.700 (target 0.9)",
        "reward_ordering guidelines accuracy 0.600 (target 0.85)"]
