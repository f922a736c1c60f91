"""The guard's reading handed to the reward (`SafetyVerdict.reading`): the reward uses it instead of
reading the answer again, and scores exactly as when it reads the answer itself."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_rlhf.config import RewardConfig
from clinical_rlhf.corpus import build_corpus
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.reward.drug_mentions import reading_mentions
from clinical_rlhf.reward.evaluation import load_hallucination_set, load_ordering_set
from clinical_rlhf.reward.text import Analysed
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.evaluation import load_cases, obfuscated_variant
from clinical_rlhf.safety.reading import TextReader
from clinical_rlhf.safety.verdict import SafetyVerdict


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


@pytest.fixture(scope="module")
def reward(guard) -> MultiObjectiveReward:
    return MultiObjectiveReward(RewardConfig(), knowledge=guard.knowledge)


def _labelled_pairs() -> list[tuple[str, str]]:
    pairs = [(s.prompt, a.text) for s in load_ordering_set() for a in s.answers]
    pairs += [(item.prompt, item.text) for item in load_hallucination_set()]
    for case in load_cases():
        hidden = obfuscated_variant(case)
        pairs += [(case.prompt, case.response), (hidden.prompt, hidden.response)]
    corpus = build_corpus()
    pairs += [(example.prompt, example.answer) for example in itertools.islice(corpus.train, 0, None, 7)]
    return pairs


def _without_reading(verdicts):
    return [dataclasses.replace(verdict, reading=None) for verdict in verdicts]


def _allowed(verdicts, keep_reading: bool):
    """Every answer scored (none vetoed), with or without the guard's reading."""
    return [SafetyVerdict(action="allow", reading=v.reading if keep_reading else None) for v in verdicts]


def _scores(reward, prompts, responses, verdicts):
    return [b.to_dict() for b in reward.score_batch(prompts, responses, verdicts)]


def test_scores_are_the_same_whoever_read_the_answer(guard, reward):
    pairs = _labelled_pairs()
    assert len(pairs) > 800
    prompts, responses = [p for p, _ in pairs], [r for _, r in pairs]
    verdicts = guard.check_batch(prompts, responses)
    assert _scores(reward, prompts, responses, verdicts) == \
        _scores(reward, prompts, responses, _without_reading(verdicts))
    assert _scores(reward, prompts, responses, _allowed(verdicts, True)) == \
        _scores(reward, prompts, responses, _allowed(verdicts, False))


_DRUGS = ["paracetamol", "ibuprofen", "warfarin", "Nurofen", "p@r@cet@mol", "i b u p r o f e n", "St John's wort",
          "Cardiozem", "sertraline's", "naproxen"]
_FILLER = ["Take", "2,000 mg", "500 mg", "every 4 hours", "with", "and", "do not combine", "is safe.", "\u200b",
           "no interaction between", "a day.", "\n", "maximum", "twice daily;", "\u0441hest pain"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_DRUGS + _FILLER), min_size=1, max_size=25))
def test_generated_answers_score_the_same_either_way(guard, reward, parts):
    response = " ".join(parts)
    prompt = "How much can I take?"
    verdict = guard.check(prompt, response)
    with_reading = SafetyVerdict(action="allow", reading=verdict.reading)
    assert _scores(reward, [prompt], [response], [with_reading]) == \
        _scores(reward, [prompt], [response], [SafetyVerdict(action="allow")])


def test_the_reward_does_not_read_an_answer_the_guard_read(guard, reward, monkeypatch):
    prompts = ["Can I take ibuprofen with warfarin?"] * 3
    responses = ["Ibuprofen and warfarin together raise the risk of bleeding; ask your pharmacist.",
                 "Take paracetamol 500 mg instead.", "Warfarin and aspirin are fine together."]
    verdicts = _allowed(guard.check_batch(prompts, responses), True)
    calls: list[str] = []
    read = TextReader.read

    def counted(self, text):
        calls.append(text)
        return read(self, text)

    monkeypatch.setattr(TextReader, "read", counted)
    reward.score_batch(prompts, responses, verdicts)
    assert calls == []
    reward.score_batch(prompts, responses, _allowed(verdicts, False))
    # Read once each, by the same reader, when the verdict has no reading; the question too, once
    # (the safety objective's stance towards what it proposes needs its drugs).
    assert [text for text in calls if text not in prompts] == responses
    assert calls.count(prompts[0]) <= 1  # once per prompt (an earlier test may have read it)


def test_a_reading_of_another_text_is_not_trusted(guard, reward):
    other = guard.check("Can I take ibuprofen?", "Take ibuprofen 400 mg.")
    response = "Take paracetamol 500 mg."
    handed = reward.score("Can I take ibuprofen?", response, SafetyVerdict(action="allow", reading=other.reading))
    own = reward.score("Can I take ibuprofen?", response, SafetyVerdict(action="allow"))
    assert handed.to_dict() == own.to_dict()


def test_reading_mentions_sit_where_the_normalised_text_names_the_drug(guard):
    text = "  Take\n\n  IBUPROFEN 400 mg,   then   paracetamol."
    normalized = Analysed(text).normalized
    mentions = reading_mentions(guard.reader.read(text), normalized)
    assert [(m.drug.name, normalized[m.span[0]:m.span[1]]) for m in mentions] == \
        [("ibuprofen", "ibuprofen"), ("paracetamol", "paracetamol")]


@pytest.mark.parametrize("text", ["Dexibuprofen is not ibuprofen.  Take\u200b ibuprofen",
                                  "Take 1bupr0fen 400 mg, then   paracetamol.", "St John's wort and sertraline"])
def test_the_fast_placement_equals_the_offset_map(guard, text):
    """`reading_mentions` finds most names by `str.find`; its naive equivalent places every one
    through the reading's offset map."""
    from clinical_rlhf.reward.drug_mentions import _normalised_offset

    reading = guard.reader.read(text)
    normalized = Analysed(text).normalized
    to_normalised = _normalised_offset(text, len(normalized))
    naive = [(m.drug.name, tuple(to_normalised(o) for o in reading.span(m.start, m.end))) for m in reading.drugs]
    assert [(m.drug.name, m.span) for m in reading_mentions(reading, normalized)] == naive
