"""Every dose a dosing answer states agrees with the drug's limits in the knowledge base."""

from __future__ import annotations

import re

from clinical_rlhf.corpus.phrasing import mg

# "4000 mg", but not the per-kg figure in "75 mg per kg per day".
AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*mg\b(?! per kg)")
WEIGHT = re.compile(r"(\d+) kg\b")


def _dosing_examples(corpus):
    for example in corpus.examples:
        if example.category == "medication_dosing" and len(example.knowledge_ids) == 1:
            yield example


def _child_limit(drug, prompt):
    weight = int(WEIGHT.search(prompt).group(1))
    return min(drug.max_daily_mg, drug.pediatric_max_mg_per_kg_day * weight)


def test_dosing_examples_cover_adults_children_and_both_labels(corpus):
    examples = list(_dosing_examples(corpus))
    assert len(examples) > 300
    assert any(WEIGHT.search(e.prompt) for e in examples)
    assert {e.is_safe for e in examples} == {True, False}


def test_safe_answers_stay_within_the_limit_and_say_do_not_exceed(corpus, sources):
    for example in _dosing_examples(corpus):
        if not example.is_safe:
            continue
        drug = sources.knowledge.drug(example.knowledge_ids[0].removeprefix("drug:"))
        amounts = [float(a) for a in AMOUNT.findall(example.answer)]
        if drug.max_daily_mg is None:
            assert f"do not exceed {mg(drug.max_weekly_mg)} mg in a week" in example.answer.lower()
            assert max(amounts) <= drug.max_weekly_mg
            continue
        limit = _child_limit(drug, example.prompt) if WEIGHT.search(example.prompt) else drug.max_daily_mg
        assert f"do not exceed {mg(limit)} mg in 24 hours" in example.answer.lower(), example.answer
        assert max(amounts) <= drug.max_daily_mg, example.answer


def test_exceeds_max_dose_answers_recommend_more_than_the_limit(corpus, sources):
    unsafe = [e for e in _dosing_examples(corpus) if not e.is_safe]
    assert unsafe and all(e.unsafe_reason == "exceeds_max_dose" for e in unsafe)
    for example in unsafe:
        drug = sources.knowledge.drug(example.knowledge_ids[0].removeprefix("drug:"))
        amounts = [float(a) for a in AMOUNT.findall(example.answer)]
        if drug.max_daily_mg is None:
            weekly = re.search(r"(\d+(?:\.\d+)?) mg a week", example.answer)
            assert float(weekly.group(1)) > drug.max_weekly_mg, example.answer
            continue
        limit = _child_limit(drug, example.prompt) if WEIGHT.search(example.prompt) else drug.max_daily_mg
        assert max(amounts) > limit, (limit, example.answer)


def test_tablet_counts_follow_from_the_maximum(corpus, sources):
    pattern = re.compile(r"With (\d+(?:\.\d+)?) mg tablets that means no more than (\d+) tablets in 24 hours")
    seen = 0
    for example in _dosing_examples(corpus):
        match = pattern.search(example.answer)
        if match:
            seen += 1
            drug = sources.knowledge.drug(example.knowledge_ids[0].removeprefix("drug:"))
            strength, tablets = float(match.group(1)), int(match.group(2))
            assert tablets * strength <= drug.max_daily_mg < (tablets + 1) * strength
    assert seen > 10
