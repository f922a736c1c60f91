"""Each optimised path against the plain definition it must match (docs/safety.md, "Measured").

The texts are the evaluation set (plain and obfuscated), one benchmark answer per advice mix, and
hypothesis-made token sequences and strings built from the words the guard cares about.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety import checks
from clinical_rlhf.safety.dosage import _FORM_WORD, _SENTENCE_END, _form_words, find_doses, sentence_ends
from clinical_rlhf.safety.evaluation import load_cases, obfuscated_variant
from clinical_rlhf.safety.medications import (
    _AGE_UNIT_YEARS,
    _AGE_WITH_UNIT,
    _AGE_WORDS,
    _BARE_NUMBER,
    _BARE_SUBJECTS,
    _NOT_AN_AGE,
    ages_in,
)
from clinical_rlhf.safety.normalize import SENTENCE_BREAK
from clinical_rlhf.safety.phrases import PhraseIndex, PhraseScanner

WORDS = ["chest", "pain", "no", "not", "take", "with", "ibuprofen", "warfarin", "500", "mg", "every", "4", "hours",
         "|", ",", "do", "exceed", "call", "999", "just", "rest", "a", "year", "old", "im", "is", "5", "tablets",
         "x", "2", "of", "paracetamol", "yo", "aged", "38", "dont", "interact", "together", "safe", ".", "they",
         "are", "she", "weeks", "months"]


@pytest.fixture(scope="module")
def texts(guard):
    cases = load_cases() + load_cases(split="holdout")
    raw = [text for case in cases for text in (case.prompt, case.response)]
    variants = [obfuscated_variant(case) for case in cases[::7]]
    raw += [text for variant in variants for text in (variant.prompt, variant.response)]
    return [guard.normalise(text) for text in raw]


def _indexes(guard) -> list[PhraseIndex]:
    return [guard.medications.drug_terms, guard.red_flags.triggers, guard.red_flags.downplay,
            guard.context.approval, guard.context.negation_before, guard.medications.combination_denial]


def test_one_pass_scan_finds_what_each_index_finds(guard, texts) -> None:
    indexes = _indexes(guard)
    scanner = PhraseScanner(indexes)
    for text in texts:
        for index, hits in zip(indexes, scanner.scan(text.tokens)):
            assert hits == index.find(text.tokens), (text.text, index)


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.sampled_from(WORDS), max_size=60).map(tuple),
       window=st.tuples(st.integers(-2, 62), st.integers(-2, 62)))
def test_cached_window_queries_equal_find_on_the_window(guard, tokens, window) -> None:
    from clinical_rlhf.safety.normalize import NormalisedText

    scanner = PhraseScanner(_indexes(guard)[:3])
    text = NormalisedText(" ".join(tokens), tokens, False, None, scanner)
    start, stop = max(0, window[0]), window[1]
    for index in _indexes(guard):
        assert text.find(index, start, stop) == index.find(tokens, start, stop)
    for position in range(len(tokens) + 1):
        first = position
        while first > 0 and tokens[first - 1] != SENTENCE_BREAK:
            first -= 1
        last = tokens.index(SENTENCE_BREAK, position) if SENTENCE_BREAK in tokens[position:] else len(tokens)
        assert text.sentence(position, position) == (first, last)


TEXT = st.lists(st.sampled_from(WORDS + [" ", "  ", ".", "!", "\n", "-", "(", "y/o", "5yo", "tabs"]),
                max_size=80).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_sentence_ends_and_form_words_equal_their_patterns(text: str) -> None:
    assert sentence_ends(text) == [match.end() for match in _SENTENCE_END.finditer(text)]
    assert [m.span() for m in _form_words(text)] == [m.span() for m in _FORM_WORD.finditer(text)]


def naive_ages(text: str, tokens: tuple[str, ...]) -> list[float]:
    """`ages_in` without its hint searches: both patterns run on every text."""
    ages = [age for word, age in _AGE_WORDS.items() if word in set(tokens)]
    for match in _AGE_WITH_UNIT.finditer(text):
        if match.group(1):
            ages.append(float(match.group(1)) * _AGE_UNIT_YEARS[match.group(2)])
        else:
            ages.append(float(next(g for g in match.groups()[2:] if g)))
    for match in _BARE_NUMBER.finditer(text):
        before = text[max(0, match.start() - 16):match.start()].split()[-2:]
        after = text[match.end():match.end() + 10].split()[:1]
        subject = " ".join(before[-2:]) if " ".join(before[-2:]) in _BARE_SUBJECTS else " ".join(before[-1:])
        if subject in _BARE_SUBJECTS and not (after and after[0].strip(".,;") in _NOT_AN_AGE):
            ages.append(float(match.group(1)))
    return ages


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_age_hints_only_skip_scans_that_find_nothing(text: str) -> None:
    tokens = tuple(text.split())
    assert ages_in(text, tokens) == naive_ages(text, tokens)


def test_age_hints_on_written_ages(guard, texts) -> None:
    written = ["my 5-year-old", "aged 70", "6 week old", "im 38", "my son is 6", "she is 4 and", "a 3 yo",
               "12 y/o boy", "15 years of age", "2yrs old", "he is 9 years", "in the cold 38", "she is 40 kg",
               "they are 7", "theyre 8 now", "i am 30", "hes 12", "shes  3"]
    for text in written + [text.text for text in texts]:
        tokens = tuple(text.split())
        assert ages_in(text, tokens) == naive_ages(text, tokens), text


def naive_dosage_flags(context, response, text, drugs, fallback, weight):
    """`checks.dosage_flags` as first written: every amount's clause read, then the excesses."""
    advised, correct_limits = [], set()
    for statement in find_doses(text, drugs, fallback):
        meaning = context.dose_stance(text[statement.clause[0]:statement.clause[1]])
        if meaning == "danger":
            continue
        advised.append((statement, meaning))
        limit = statement.drug.max_daily_mg
        if meaning == "limit" and limit and statement.daily_mg is not None and statement.daily_mg <= limit:
            correct_limits.add(statement.drug.name)
    found = {}
    for statement, meaning in advised:
        for subtype, ratio in checks._excesses(statement, weight, statement.drug.name in correct_limits):
            if subtype in checks._SINGLE_DOSE_SUBTYPES and meaning == "limit":
                continue
            found.setdefault((statement.drug.name, subtype), ratio >= checks.CRITICAL_DOSE_RATIO)
    return found


@pytest.mark.parametrize("weight", [None, 16.0])
def test_reading_only_the_amounts_that_matter_gives_the_same_dose_flags(guard, texts, weight) -> None:
    paracetamol = guard.knowledge.drug("paracetamol")
    extra = ["paracetamol 1 g every 4 hours, no more than 4 g in 24 hours", "8 g of paracetamol is an overdose",
             "take 2 x 500 mg paracetamol every 2 hours", "up to 6 g a day of paracetamol is fine",
             "methotrexate 10 mg daily", "give 30 mg/kg paracetamol"]
    for text in [t.text for t in texts] + extra:
        drugs = [m.drug for m in guard.medications.mentions(guard.normalise(text))]
        flags = checks.dosage_flags(guard.context, text, text, drugs, paracetamol, weight)
        got = {(f.rule_id.split(":")[1], f.subtype): f.severity == "critical" for f in flags}
        assert got == naive_dosage_flags(guard.context, text, text, drugs, paracetamol, weight), text


def test_sentence_ends_by_hand() -> None:
    # a mark ends a sentence before whitespace or the end of the text; a newline always does
    assert sentence_ends("a. b.c!\nd;") == [2, 7, 8, 10]
