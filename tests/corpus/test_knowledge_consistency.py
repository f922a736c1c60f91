"""Answers agree with the knowledge base: safe ones say what it says, unsafe ones break it."""

from __future__ import annotations

import re

import pytest

from clinical_rlhf.knowledge.guidelines import normalize_text

# Words that soften a claim. An overconfident answer has none (the failure it stands for).
HEDGES = re.compile(r"\b(may|might|could|usually|often|probably|likely|possibly|perhaps|seems|generally)\b")
ONWARD = ("emergency_now", "urgent_care", "routine_referral", "safety_net_worse")


def _reward_lexicon():
    """The reward's wording lexicon when the reward package is installed (checks agreement)."""
    try:
        from clinical_rlhf.reward import lexicon
    except ImportError:
        return None
    return lexicon


def _guidelines(example, sources):
    by_id = {g.id: g for g in sources.guidelines}
    return [by_id[k.split(":", 1)[1]] for k in example.knowledge_ids if k.startswith("guideline:")]


def _says(sources, set_name, text):
    return bool(sources.escalation[set_name].search(normalize_text(text)))


def test_safe_answers_contain_every_must_advise_point_and_no_must_not(corpus, sources):
    checked = 0
    for example in corpus.examples:
        if not example.is_safe:
            continue
        answer = normalize_text(example.answer)
        for guideline in _guidelines(example, sources):
            checked += 1
            for point in guideline.must_advise:
                assert point.spans(answer), (example.id, guideline.id, point.id, example.answer)
            for point in guideline.must_not:
                assert not point.spans(answer), (example.id, guideline.id, point.id, example.answer)
    assert checked > 700


def test_prompts_are_recognised_as_the_presentation_they_were_written_for(corpus, sources):
    for example in corpus.examples:
        own = example.knowledge_ids[0]
        if own.startswith("red_flag:"):
            assert own.split(":", 1)[1] in sources.matched_red_flags(example.prompt), example.prompt
        elif own.startswith("guideline:"):
            matched = [g.id for g in sources.matched_guidelines(example.prompt)]
            assert own.split(":", 1)[1] in matched, example.prompt


def test_chronic_and_everyday_prompts_hold_no_red_flag(corpus, sources):
    for example in corpus.examples:
        if example.category in ("chronic_condition", "everyday_complaint") \
                and example.knowledge_ids[0].startswith("guideline:"):
            assert not sources.matched_red_flags(example.prompt), example.prompt


def test_safe_emergency_answers_send_the_person_to_care_and_dismissive_ones_do_not(corpus, sources):
    for example in corpus.examples:
        if example.category != "emergency":
            continue
        escalates = _says(sources, "emergency_now", example.answer) or _says(sources, "urgent_care", example.answer)
        assert escalates == example.is_safe, (example.id, example.answer)


def test_overconfident_answers_neither_hedge_nor_refer(corpus, sources):
    overconfident = [e for e in corpus.examples if e.unsafe_reason == "overconfident_no_hedging"]
    assert overconfident
    for example in overconfident:
        assert not HEDGES.search(example.answer.lower()), example.answer
        reward_lexicon = _reward_lexicon()
        if reward_lexicon is not None:
            assert not reward_lexicon.HEDGE_RE.search(normalize_text(example.answer)), example.answer
        assert not any(_says(sources, name, example.answer) for name in ONWARD), example.answer


def test_safe_chronic_and_everyday_answers_hedge_and_say_when_to_see_someone(corpus, sources):
    for example in corpus.examples:
        if example.is_safe and example.category in ("chronic_condition", "everyday_complaint"):
            assert _says(sources, "routine_referral", example.answer) or _says(sources, "urgent_care", example.answer)
            if example.knowledge_ids[0].startswith("guideline:"):
                assert HEDGES.search(example.answer.lower()), example.answer
                reward_lexicon = _reward_lexicon()
                if reward_lexicon is not None:
                    assert reward_lexicon.HEDGE_RE.search(normalize_text(example.answer)), example.answer


def test_interaction_answers_quote_the_rule_for_the_pair(corpus, sources):
    kb = sources.knowledge
    for example in corpus.examples:
        if example.category != "drug_interaction":
            continue
        rule_id, first, second = (k.split(":", 1)[1] for k in example.knowledge_ids)
        rules = kb.interactions_between(first, second)
        # The quoted rule is one of the most severe for the pair (ties may come in either order).
        rule = next(r for r in rules if r.id == rule_id)
        assert rule.severity == rules[0].severity
        if example.is_safe:
            assert rule.effect.rstrip(".") in example.answer
            assert _says(sources, "routine_referral", example.answer)
        else:
            assert rule.severity != "minor"
            assert not _says(sources, "routine_referral", example.answer)


def test_contraindication_questions_state_the_condition_and_safe_answers_the_reason(corpus, sources):
    rules = {rule.id: rule for rule in sources.knowledge.contraindications}
    seen = 0
    for example in corpus.examples:
        ids = [k.split(":", 1)[1] for k in example.knowledge_ids if k.startswith("contraindication:")]
        if not ids:
            continue
        seen += 1
        rule = rules[ids[0]]
        prompt = example.prompt.lower().replace("'", "")
        if rule.condition_terms:
            assert any(term.lower().replace("'", "") in prompt for term in rule.condition_terms), example.prompt
        if rule.max_age_years is not None:
            assert re.search(r"\d+-(month|year)-old", example.prompt)
        if example.is_safe:
            assert rule.reason.rstrip(".") in example.answer
        else:
            assert example.unsafe_reason == "contraindicated"
            assert not _says(sources, "routine_referral", example.answer)
    assert seen > 50


def test_reward_lexicon_sees_overconfidence_where_the_label_says_so(corpus):
    lexicon = _reward_lexicon()
    if lexicon is None:
        pytest.skip("the reward package is not installed")
    for example in corpus.examples:
        if example.unsafe_reason == "overconfident_no_hedging":
            assert lexicon.OVERCONFIDENT_RE.search(normalize_text(example.answer)), example.answer


def test_only_emergency_prompts_describe_an_emergency(corpus, sources):
    for example in corpus.examples:
        if example.category == "emergency":
            continue
        assert not sources.matched_red_flags(example.prompt), example.prompt
        urgencies = {g.urgency for g in sources.matched_guidelines(example.prompt)}
        assert not urgencies & {"emergency", "urgent"}, example.prompt
