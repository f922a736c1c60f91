"""The one context reader (`knowledge/context_reading.py`): the guard and the question reader behind
the reward read negated, historical and hypothetical findings alike; the reward reads advice by the
same reader's advice rule; and a clinician's edit of a cue set in language.yaml reaches every reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clinical_rlhf.knowledge.context_reading import ContextRules, TokenReading, shared_rules
from clinical_rlhf.knowledge.language import DEFAULT_DIRECTORY, LANGUAGE_FILE, load_language
from clinical_rlhf.knowledge.prompt_reading import PromptReading
from clinical_rlhf.reward.text import Analysed
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.context import ContextReader

# (text, finding, what the finding is): patients' and clinicians' words, hard cases included.
FINDINGS = [
    ("No chest pain, but my left arm feels heavy.", "chest pain", "negated"),
    ("No chest pain, but my left arm feels heavy.", "arm", "current"),                 # "but" ends the scope
    ("He denies any chest pain or shortness of breath.", "shortness of breath", "negated"),
    ("She's not breathing properly and her lips are blue.", "breathing", "current"),   # an absence finding
    ("I'm not having chest pain at the moment.", "chest pain", "negated"),
    ("Chest pain was ruled out at A&E last night.", "chest pain", "negated"),
    ("The headache has gone now.", "headache", "negated"),
    ("Her face has gone droopy on one side.", "face", "current"),                      # a new state, not resolved
    ("Not sure whether it's chest pain or heartburn.", "chest pain", "current"),       # pseudo-negation
    ("Without any warning she collapsed.", "collapsed", "current"),                    # pseudo-negation
    ("No fever, I just have a stiff neck and a rash.", "stiff neck", "current"),       # comma, new subject
    ("No fever, cough or rash.", "rash", "negated"),                                   # comma, list item
    ("My son isn't feeding and has a high temperature.", "temperature", "current"),    # "and" + new predicate
    ("No vomiting and now he's confused.", "confused", "current"),
    ("Patient denies haemoptysis; reports pleuritic chest pain.", "chest pain", "current"),
    ("The scan showed no bleed on the brain.", "bleed", "negated"),
    ("She had no rash this morning but now there are purple spots.", "purple spots", "current"),
    ("On examination there is no neck stiffness.", "neck stiffness", "negated"),
    ("I had a stroke in 2015 and I'm fine now.", "stroke", "past"),
    ("My mum had a stroke at 70.", "stroke", "past"),                                  # third party, told as past
    ("My dad has crushing chest pain.", "chest pain", "current"),                      # third party, now
    ("Years ago I had a seizure.", "seizure", "past"),
    ("In the past hour I've had two seizures.", "seizures", "current"),                # "past hour" is now
    ("Since my heart attack I get breathless on stairs.", "heart attack", "past"),
    ("Previous history of pulmonary embolism, on apixaban.", "pulmonary embolism", "past"),
    ("What are the signs of meningitis in toddlers?", "meningitis", "past"),
    ("How can I lower my risk of a stroke?", "stroke", "past"),
    ("If I ever get chest pain, what should I do?", "chest pain", "past"),
    ("If it helps, I have chest pain right now.", "chest pain", "current"),            # the condition is closed
    ("I'm writing an essay about sepsis.", "sepsis", "past"),
]


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def _guard_reading(guard: SafetyGuard, text: str, phrase: str) -> str:
    normalised = guard.normalise(text)
    words = guard._tokenize(phrase)
    tokens = normalised.tokens
    start = next(i for i in range(len(tokens)) if tokens[i:i + len(words)] == words)
    situation = guard.context.situation(normalised, start, start + len(words))
    return {"history": "past", "hypothetical": "past"}.get(situation, situation)


def _question_reading(text: str, phrase: str) -> str:
    reading = PromptReading(text)
    found = re.search(re.escape(phrase), reading.text)
    first, last = reading.word_at(found.start()), reading.word_at(found.end() - 1) + 1
    if reading.is_negated(first, last):
        return "negated"
    return "current" if reading.is_current(first, last) else "past"


@pytest.mark.parametrize(("text", "phrase", "expected"), FINDINGS)
def test_guard_and_question_reader_read_a_finding_alike(guard, text, phrase, expected) -> None:
    assert (_guard_reading(guard, text, phrase), _question_reading(text, phrase)) == (expected, expected)


# (answer, advice, turned down?): the reward's reading of advice.
ADVICE = [
    ("Do not take antibiotics for a cold.", "take antibiotics", True),
    ("Don't hesitate to call 999 if she gets worse.", "call 999", False),              # a release
    ("If it doesn't improve in two days, see your GP.", "see your gp", False),         # negation in the condition
    ("Don't panic, call 999 now.", "call 999", False),                                 # comma before an instruction
    ("Don't use ice, butter or toothpaste on a burn.", "butter", True),                # list items share it
    ("Avoid ibuprofen while you are pregnant.", "ibuprofen", True),
    ("Rest at home rather than going to A&E.", "going to a&e", True),
    ("You do not need to go to the emergency department.", "emergency department", True),
    ("Call 999 now; do not drive yourself.", "call 999", False),
    ("No need to wait: call an ambulance.", "call an ambulance", False),               # a new clause after the colon
]


@pytest.mark.parametrize(("answer", "advice", "turned_down"), ADVICE)
def test_reward_reads_advice_by_the_readers_advice_rule(answer, advice, turned_down) -> None:
    analysed = Analysed(answer)
    position = analysed.normalized.index(advice)
    assert analysed.is_negated(position) is turned_down
    assert TokenReading(analysed.normalized, shared_rules()).is_advice_negated(position, position + len(advice)) \
        is turned_down


def test_guard_question_reader_and_reward_hold_one_set_of_cues(guard) -> None:
    """The guard builds the reader with its own tokeniser (patient shorthand read in the cues); the
    cue data and reaches are the same file's."""
    shared, guards = shared_rules(), guard.context.rules
    assert guards.negation_reach == shared.negation_reach == load_language().reach("negation_before")
    assert guards.history_reach == shared.history_reach and guards.hypothetical_reach == shared.hypothetical_reach
    assert guards.terminators == shared.terminators
    assert len(guards.negation_before.phrases) == len(shared.negation_before.phrases)


def _edited(tmp_path: Path, set_name: str, phrase: str) -> Path:
    raw = yaml.safe_load((DEFAULT_DIRECTORY / LANGUAGE_FILE).read_text(encoding="utf-8"))
    raw["sets"][set_name]["phrases"].append(phrase)
    (tmp_path / LANGUAGE_FILE).write_text(yaml.safe_dump(raw), encoding="utf-8")
    return tmp_path


def test_a_clinicians_edit_of_a_negation_cue_reaches_guard_and_reward(guard, tmp_path) -> None:
    text = "Clear of chest pain since the new tablets."
    edited = load_language(_edited(tmp_path, "negation_before", "clear of"))
    guard_before = ContextReader(guard._tokenize)
    guard_after = ContextReader(guard._tokenize, edited)
    normalised = guard.normalise(text)
    start = normalised.tokens.index("chest")
    assert guard_before.situation(normalised, start, start + 2) == "current"
    assert guard_after.situation(normalised, start, start + 2) == "negated"
    offset = text.lower().index("chest pain")
    assert not TokenReading(text.lower(), shared_rules()).is_negated(offset, offset + 10)
    assert TokenReading(text.lower(), ContextRules(language=edited)).is_negated(offset, offset + 10)


def test_a_clinicians_edit_of_an_advice_cue_reaches_the_advice_rule(tmp_path) -> None:
    answer = "skip the antibiotics for a cold"
    edited = ContextRules(language=load_language(_edited(tmp_path, "advice_negation_before", "skip")))
    offset = answer.index("antibiotics")
    assert not TokenReading(answer, shared_rules()).is_advice_negated(offset, offset + 11)
    assert TokenReading(answer, edited).is_advice_negated(offset, offset + 11)


def test_text_tokens_read_as_the_guard_and_keep_offsets() -> None:
    text = "i don't have chest pain. my dad's on 1.5 tablets: if it gets worse - call 999"
    reading = TokenReading(text, shared_rules())
    assert reading.tokens == ("i", "dont", "have", "chest", "pain", "|", "dads", "on", "1", "5", "tablets", ",",
                              "if", "it", "gets", "worse", ",", "call", "999")
    assert [text[start:start + 3] for start in reading.starts[:4]] == ["i d", "don", "hav", "che"]
    assert reading.sentence(3, 5) == (0, 5) and reading.sentence(7, 8) == (6, 19)


@pytest.mark.parametrize(("answer", "action"), [
    ("Don't hesitate to call 999 now.", "allow"),                 # a release: read alike by the reward
    ("Don't panic, call 999 now.", "allow"),
    ("If it doesn't settle in a minute, call 999 - actually, call 999 now.", "allow"),
    ("Rather than calling 999, rest at home.", "reject"),
    ("You don't need an ambulance, just rest.", "reject"),
])
def test_guard_reads_emergency_advice_by_the_same_advice_rule(guard, answer, action) -> None:
    prompt = "I have crushing chest pain spreading to my left arm and I'm sweating."
    assert guard.check(prompt, answer).action == action
