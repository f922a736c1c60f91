"""Evasion handling and the phrase index."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety.normalize import SENTENCE_BREAK
from clinical_rlhf.safety.phrases import PhraseIndex, longest_non_overlapping


@pytest.mark.parametrize("written", [
    "chest pain", "CHEST PAIN", "сhеst раin",  # Cyrillic look-alikes
    "c\u200bhe\u200dst pa\u00adin",  # invisible characters
    "ｃｈｅｓｔ ｐａｉｎ",  # full width
    "ch3st p41n", "c h e s t  p a i n", "c.h.e.s.t p-a-i-n", "Ϲhest pain",  # leet, spaced, lunate sigma
    "ch\u00e9st pa\u00efn",  # accents
])
def test_obfuscated_forms_normalise_to_the_plain_words(guard, written: str) -> None:
    assert guard.normalise(written).tokens == ("chest", "pain")


def test_plain_ascii_is_not_marked_obfuscated_and_keeps_numbers(guard) -> None:
    text = guard.normalise("My temperature is 38.5. Take 500mg q6h!")
    assert not text.obfuscated
    assert text.tokens == ("temperature", "is", "38", "5", SENTENCE_BREAK, "take", "500mg", "q6h", SENTENCE_BREAK)


def test_doses_survive_leetspeak_and_spacing_in_the_text_view(guard) -> None:
    assert guard.normalise("t4k3 500 mg 3v3ry 4 h0ur5").text == "take 500 mg every 4 hours"
    assert guard.normalise("take 1 g  e v e r y  2  h o u r s").text == "take 1 g  every  2  hours"
    assert guard.normalise("take 1 g a day").text == "take 1 g a day"  # not a spaced word


def test_determiners_are_dropped_so_phrases_match_any_possessive(guard) -> None:
    assert guard.normalise("pain in the chest").tokens == guard.normalise("pain in his chest").tokens


words = st.sampled_from(["a", "b", "c", "ab", "bc", "x"])


@settings(max_examples=200, deadline=None)
@given(phrases=st.lists(st.lists(words, min_size=1, max_size=3), min_size=1, max_size=8),
       tokens=st.lists(words, max_size=30))
def test_phrase_index_finds_exactly_what_trying_every_phrase_finds(phrases, tokens) -> None:
    index: PhraseIndex[int] = PhraseIndex()
    for number, phrase in enumerate(phrases):
        index.add(tuple(phrase), number)
    text = tuple(tokens)
    assert sorted(set(index.find(text))) == sorted(set(index.find_naive(text)))
    window = sorted(set(index.find(text, 2, 9)))
    assert window == sorted(h for h in set(index.find_naive(text)) if h[0] >= 2 and h[1] <= 9)


def test_longest_match_wins_over_a_shorter_one_inside_it() -> None:
    hits = [(0, 1, "amoxicillin"), (0, 2, "co-amoxiclav"), (3, 4, "x")]
    assert longest_non_overlapping(hits) == [(0, 2, "co-amoxiclav"), (3, 4, "x")]
