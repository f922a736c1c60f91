"""The guard's reading of a text, made once and handed on with the verdict.

    reading = guard.reader.read(text)        # what `SafetyGuard.check` does for the question and the answer
    verdict = guard.check(prompt, response)
    verdict.reading.answer.drugs             # the drugs the answer names, as the guard read them
    verdict.reading.answer.span(0, 2)        # offsets in the answer as written of its first two tokens

A `TextReading` holds what the guard reads from one text and what another part would otherwise read
again: the normalised text (tokens, with the offset map back to the original, `NormalisedText.spans`)
and the drugs it names. `SafetyGuard.check` reads the question and the answer once each and puts both
on the verdict (`SafetyVerdict.reading`); the reward (`reward/multi_objective.py`) takes them from
there, and reads the text itself through the same `TextReader` only when the verdict has none (a
verdict built by hand, one loaded from disk). The reading is not part of `to_dict` or the audit
log: it is derived from the texts, which the log keeps. `with_spans` gives the guard's flags that
lack one an evidence span through the reading.

Frozen: a reading may be shared between the guard, the reward and threads of a server. The
`NormalisedText` inside keeps private caches of answers computed from its immutable fields, so
sharing it is safe too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from clinical_rlhf.safety.medications import DrugMention, MedicationChecker
from clinical_rlhf.safety.normalize import NormalisedText, Normaliser
from clinical_rlhf.safety.offsets import Span
from clinical_rlhf.safety.redflags import locate
from clinical_rlhf.safety.verdict import SafetyFlag

_WORDS_AND_COMMAS = re.compile(r"[^\W_]+|,")
_LOCATED_CATEGORIES = frozenset({"red_flag", "dosage", "intent", "hallucination"})
"""Flags whose evidence is words of their text (others join several places: "a + b", "drug / age")."""
MAX_LOCATED = 8
"""Distinct evidences located per verdict (`with_spans`); a flag beyond them keeps no span. Each
costs a scan of the tokens, so while a text's distinct flags grow with its length the cost grows
with flags x tokens: a small bound keeps that short of the cost's shape (tests/safety/test_linear_shape.py)."""
MAX_LOCATED_CHARS = 100_000
"""Flags of a longer text keep no span: its offset map and the scans would cost more than the
guard's whole reading of it (a pasted record; hostile input up to `safety.max_text_chars`)."""


@dataclass(frozen=True, slots=True)
class TextReading:
    """One text (a question or an answer) as the guard read it."""

    original: str
    """The text as written."""
    normalised: NormalisedText
    """Its normalised views: `text` (numbers), `tokens` (phrases), with the offset map `spans`."""
    drugs: tuple[DrugMention, ...]
    """Drugs it names, in order, at token positions (longest name first: "co-amoxiclav")."""

    def span(self, start: int, end: int) -> Span | None:
        """Offsets in `original` of tokens[start:end]; None for an empty stretch."""
        return self.normalised.span(start, end)

    def written(self, start: int, end: int) -> str:
        """tokens[start:end] as the text wrote them ("ch3st p a i n" for chest pain)."""
        span = self.span(start, end)
        return self.original[span[0]:span[1]] if span is not None else ""

    def locate(self, tokens: tuple[str, ...]) -> Span | None:
        """Offsets in `original` of the first place where `tokens` occur as consecutive tokens;
        None when they do not (one scan of the tokens, `tuple.index` in C)."""
        own = self.normalised.tokens
        size = len(tokens)
        if not size:
            return None
        position = -1
        try:
            while True:
                position = own.index(tokens[0], position + 1)
                if own[position:position + size] == tokens:
                    return self.span(position, position + size)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Reading:
    """The readings a verdict was judged on (None for a text the guard did not read: a question
    or an answer too long to read, a conversation's joined turns)."""

    question: TextReading | None = None
    answer: TextReading | None = None


class TextReader:
    """Makes `TextReading`s with the guard's normaliser and drug index: the one reading function
    that the guard and, for verdicts without a reading, the reward both call."""

    def __init__(self, normalise: Normaliser, medications: MedicationChecker) -> None:
        self.normalise = normalise
        self.medications = medications

    def read(self, text: str) -> TextReading:
        normalised = self.normalise(text)
        return TextReading(text, normalised, tuple(self.medications.mentions(normalised)))


def with_spans(flags: list[SafetyFlag], question: TextReading | None, answer: TextReading | None,
               tokenize: Callable[[str], tuple[str, ...]]) -> list[SafetyFlag]:
    """Each flag without a span located through the reading of its text (`TextReading.locate`:
    the offset map finds words that a pattern over the original cannot, such as "ch3st p a i n"),
    its evidence then the words as written. Only flags whose evidence is words of their text are
    located (`_LOCATED_CATEGORIES`: not "ibuprofen + warfarin" nor "codeine / age 5"), each distinct
    evidence once and at most `MAX_LOCATED` of them per verdict: each costs a scan of the tokens,
    so the bound keeps a hostile answer with thousands of flags linear; none in a text longer than
    `MAX_LOCATED_CHARS`."""
    located: dict[tuple[str, str], Span | None] = {}
    spanned = []
    for flag in flags:
        reading = question if flag.source == "prompt" else answer
        key = (flag.source, flag.evidence)
        if (flag.span is not None or reading is None or not flag.evidence
                or len(reading.original) > MAX_LOCATED_CHARS
                or flag.category not in _LOCATED_CATEGORIES
                or (key not in located and len(located) >= MAX_LOCATED)):
            spanned.append(flag)
            continue
        if key not in located:
            located[key] = _locate(reading, flag.evidence, tokenize)
        span = located[key]
        spanned.append(flag if span is None else
                       replace(flag, span=span, evidence=reading.original[span[0]:span[1]]))
    return spanned


def _locate(reading: TextReading, evidence: str, tokenize: Callable[[str], tuple[str, ...]]) -> Span | None:
    """Where `evidence` lies in the reading's text: found as written by the pattern the flags use
    (`redflags.locate`: plain text, no map needed), else through the offset map as its tokens joined
    (red flags), read as a phrase (doses), or with its commas kept as the clause breaks the tokens
    hold ("2,000 mg")."""
    if not reading.normalised.obfuscated:
        span = locate(reading.original, evidence)[1]
        if span is not None:
            return span
    present = reading.normalised.token_set
    for tokens in (tuple(evidence.split()), tokenize(evidence), tuple(_WORDS_AND_COMMAS.findall(evidence.lower()))):
        if tokens and present.issuperset(tokens):
            span = reading.locate(tokens)
            if span is not None:
                return span
    return None
