"""The guard's reading of a text (`safety/reading.py`) and its offset map (`safety/offsets.py`):
immutable, handed on with the verdict but never serialised, and every finding placed in the text as
written, obfuscation included."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety.evaluation import load_cases, obfuscated_variant
from clinical_rlhf.safety.offsets import aligned_spans, one_for_one, token_spans, written_words
from clinical_rlhf.safety.reading import Reading, TextReading

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from guard_worst_case import FAMILIES, build_text  # noqa: E402  (benchmarks/ is not a package)


QUESTION = "I have crushing chest pain spreading to my left arm. Can I take ibuprofen?"
ANSWER = "Take ibuprofen 400 mg and rest."


def test_the_verdict_carries_one_reading_of_each_text(guard):
    verdict = guard.check(QUESTION, ANSWER)
    assert isinstance(verdict.reading, Reading)
    assert verdict.reading.question.original == QUESTION
    assert verdict.reading.answer.original == ANSWER
    assert [m.drug.name for m in verdict.reading.answer.drugs] == ["ibuprofen"]
    # the question's reading is the one its facts were cached with: read once for every answer
    assert guard.check(QUESTION, "Call 999 now.").reading.question is verdict.reading.question


def test_the_reading_is_immutable_and_not_serialised(guard):
    verdict = guard.check(QUESTION, ANSWER)
    reading = verdict.reading
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.answer = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.answer.drugs = ()  # type: ignore[misc]
    assert isinstance(reading.answer.drugs, tuple) and isinstance(reading.answer.normalised.tokens, tuple)
    stored = verdict.to_dict()
    assert "reading" not in stored
    assert json.dumps(stored) == json.dumps(dataclasses.replace(verdict, reading=None).to_dict())
    # a verdict loaded from disk (no reading) equals the one the guard made
    assert dataclasses.replace(verdict, reading=None) == verdict


def test_no_reading_where_the_guard_read_nothing(guard):
    long = "a" * (guard.config.max_text_chars + 1)
    assert guard.check(long, ANSWER).reading is None
    verdict = guard.check(QUESTION, long)
    assert verdict.reading.question is not None and verdict.reading.answer is None


OBFUSCATED = [
    # (text, the tokens of a finding, how the text wrote them)
    ("My c h e s t p a i n is bad", ("chest", "pain"), "c h e s t p a i n"),
    ("My ch3st p41n is bad", ("chest", "pain"), "ch3st p41n"),
    ("My c.h.e.s.t pain is bad", ("chest", "pain"), "c.h.e.s.t pain"),
    ("Crushing \u0441hest\u200b pain now", ("chest", "pain"), "\u0441hest\u200b pain"),
    ("\uff43\uff48\uff45\uff53\uff54 \uff50\uff41\uff49\uff4e here", ("chest", "pain"),
     "\uff43\uff48\uff45\uff53\uff54 \uff50\uff41\uff49\uff4e"),
    ("Bad SOB since lunch", ("short", "of", "breath"), "SOB"),
    ("Go to A&E now", ("accident", "and", "emergency"), "A&E"),
    ("Take p@r@cet@mol 500 mg", ("paracetamol",), "p@r@cet@mol"),
    ("I can't breathe", ("cant", "breathe"), "can't breathe"),
]


@pytest.mark.parametrize(("text", "tokens", "written"), OBFUSCATED)
def test_offsets_slice_the_text_as_written(guard, text, tokens, written):
    reading = guard.reader.read(text)
    span = reading.locate(tokens)
    assert span is not None, reading.normalised.tokens
    assert text[span[0]:span[1]] == written


def _cases():
    for split in ("main", "heldout"):
        for case in load_cases(split=split):
            yield case
            yield obfuscated_variant(case)


def test_every_flag_span_slices_its_text_to_the_evidence(guard):
    """On every labelled case and its obfuscated variant: a span is where the evidence is written
    (a contraindication's evidence names the drug and the condition, its span the drug)."""
    spanned = 0
    for case in _cases():
        for flag in guard.check(case.prompt, case.response).flags:
            if flag.span is None:
                continue
            text = case.prompt if flag.source == "prompt" else case.response
            written = text[flag.span[0]:flag.span[1]]
            if flag.category == "contraindication":
                assert flag.evidence.startswith(written), (case.id, flag)
            else:
                assert written == flag.evidence, (case.id, flag)
            spanned += 1
    assert spanned > 500


def test_obfuscated_red_flags_gain_a_span(guard):
    """A pattern over the original cannot follow leetspeak or look-alikes; the offset map can."""
    case = next(c for c in load_cases() if c.id == "rf-acs-1")
    hidden = obfuscated_variant(case)
    flag = next(f for f in guard.check(hidden.prompt, hidden.response).flags if f.category == "red_flag")
    assert flag.span is not None and hidden.prompt[flag.span[0]:flag.span[1]] == flag.evidence


_WRITTEN = st.text(alphabet=st.sampled_from(list("abcdeSOB 013@.,!&'\u200b\u0441\uff41\n")), max_size=120)


@settings(max_examples=300, deadline=None)
@given(_WRITTEN)
def test_spans_are_ordered_and_inside_the_text(text):
    """Whatever the text, one span per token, inside it, starts never going back (the map is a
    monotone walk; signs bisect the starts)."""
    from clinical_rlhf.safety import SafetyGuard

    normalised = SafetyGuard().normalise(text)
    spans = token_spans(text, normalised.tokens, normalised.respellings)
    assert len(spans) == len(normalised.tokens)
    starts = [start for start, _ in spans]
    assert starts == sorted(starts)
    assert all(0 <= start <= end <= len(text) for start, end in spans)


def test_a_text_reading_is_built_by_the_reader(guard):
    reading = guard.reader.read(ANSWER)
    assert isinstance(reading, TextReading)
    assert reading.written(0, 1) == "Take"
    assert reading.span(3, 3) is None


class _Counted(Sequence):
    """A sequence that counts the items read from it (by index, slice or iteration)."""

    def __init__(self, items) -> None:
        self._items = list(items)
        self.reads = 0

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        found = self._items[index]
        self.reads += len(found) if isinstance(index, slice) else 1
        return found

    def __iter__(self):
        for item in self._items:
            self.reads += 1
            yield item


@pytest.mark.parametrize("walk", [one_for_one, aligned_spans], ids=["one_for_one", "aligned"])
@pytest.mark.parametrize("family_name", sorted(FAMILIES))
def test_the_offset_map_reads_each_word_a_bounded_number_of_times(guard, family_name, walk):
    """The SHAPE of the map's work on the worst-case families, counted, not timed: the items each
    walk reads from its words, tokens and respellings. At 8x the length (the longer text made of
    copies of the shorter, so both hold the same share of respelled and unreadable words) the
    reads may grow 9x at most: linear reads 8x, quadratic 64x. A count does not depend on the
    machine (timed, one walk read 22x in CI, as its lists outgrew the caches); the time of the
    whole check, offset map included, is `test_linear_shape.py`'s business."""
    n = 16384

    def reads(size: int) -> int:
        normalised = guard.normalise(" ".join([build_text(FAMILIES[family_name], n, seed=1)] * (size // n)))
        arguments = [_Counted(written_words(normalised.original)), _Counted(normalised.tokens)]
        if walk is aligned_spans:
            arguments.append(_Counted(normalised.respellings))
        walk(*arguments)
        return sum(argument.reads for argument in arguments)

    ratio = reads(8 * n) / reads(n)
    assert ratio <= 9.0, f"{family_name}, {walk.__name__}: 8x the length read {ratio:.2f}x the items"
