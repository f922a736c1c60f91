"""Text helpers shared by the rule-based scorers: one analysed view of an answer, phrase hits
with negation and conditional context, and word statistics. Pure Python, no torch.

An answer is analysed once (`Analysed`) and every scorer reads that view, so normalising,
tokenising and sentence splitting are paid once per answer, not once per objective.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import cached_property

from clinical_rlhf.knowledge.context_reading import TokenReading, shared_rules
from clinical_rlhf.knowledge.guidelines import normalize_text
from clinical_rlhf.knowledge.language import load_language

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?;\n]+")
_CLAUSE_BREAK = re.compile(r"[.;:!?()\n]| - |\bbut\b|\bhowever\b|\bthough\b")
_LANGUAGE = load_language()
_RULES = shared_rules()

# One-word cues that turn the advice after them down, as the one context reader reads them
# (`knowledge/context_reading.py`: `negation_before` and `advice_negation_before`).
NEGATORS = frozenset(phrase[0] for phrase in (*_RULES.negation_before.phrases, *_RULES.advice_negation.phrases)
                     if len(phrase) == 1)
# Words that open a conditional clause: advice inside one is conditional ("call 999 if ..."); the
# context reader reads a negation inside one as negating the condition, not the advice.
CONDITIONALS = _LANGUAGE.words("answer_conditionals")
CLAUSE_CHARS_READ = 400
"""How far back a clause is read from a phrase (~60 words). Real clauses are far shorter; the
bound keeps each reading constant-time on a text with no clause breaks (a pasted list, a hostile
input), so scoring stays linear in the answer's length."""


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits, with an internal apostrophe kept: "don't")."""
    return _WORD.findall(text)


def sentence_spans(normalized: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty sentence of already-normalised text."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(normalized):
        if normalized[start:match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if normalized[start:].strip():
        spans.append((start, len(normalized)))
    return spans


@dataclass
class Analysed:
    """One answer (or prompt), normalised once; lazily computed views."""

    raw: str
    normalized: str = field(init=False)

    def __post_init__(self) -> None:
        self.normalized = normalize_text(self.raw)

    @cached_property
    def lowered(self) -> str:
        """The raw text in lower case (where evidence found in `normalized` is looked up)."""
        return self.raw.lower()

    @cached_property
    def words(self) -> list[str]:
        return words(self.normalized)

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        return sentence_spans(self.normalized)

    @cached_property
    def _sentence_starts(self) -> list[int]:
        return [start for start, _ in self.sentences]

    def sentence_of(self, position: int) -> tuple[int, int]:
        """The sentence whose [start, end] holds `position` (bisection; sentences are sorted and
        separated by their end marks); the whole text when none does."""
        sentences = self.sentences
        index = bisect.bisect_right(self._sentence_starts, position) - 1
        if index >= 0 and sentences[index][0] <= position <= sentences[index][1]:
            return sentences[index]
        return 0, len(self.normalized)

    @cached_property
    def _clause_starts(self) -> list[int]:
        """Sorted offsets where a clause starts (after each break)."""
        return [m.end() for m in _CLAUSE_BREAK.finditer(self.normalized)]

    def clause_before(self, position: int) -> list[str]:
        """The words between the last clause start at or before `position` and `position`,
        apostrophes dropped as the context reader reads them ("don't" -> "dont")."""
        starts = self._clause_starts
        index = bisect.bisect_right(starts, position) - 1
        start = max(starts[index] if index >= 0 else 0, position - CLAUSE_CHARS_READ)
        return [word.replace("'", "") for word in words(self.normalized[start:position])]

    @cached_property
    def context(self) -> TokenReading:
        """The text as the one context reader reads it."""
        return TokenReading(self.normalized, _RULES)

    def is_negated(self, position: int) -> bool:
        """Whether the advice starting at `position` is turned down in its clause ("do not take
        antibiotics"), as the one context reader reads advice: not when the negation sits in a
        condition ("if it doesn't improve, call 999") or is released ("don't hesitate to call 999")."""
        return self.context.is_advice_negated(position, position + 1)

    def is_conditional(self, position: int) -> bool:
        """The phrase at `position` sits in a sentence with a conditional word ("call 999 if ...")."""
        sentence = self.sentence_of(position)
        found = self._conditional_sentences.get(sentence)
        if found is None:
            found = self._conditional_sentences[sentence] = any(
                word in CONDITIONALS for word in words(self.normalized[sentence[0]:sentence[1]]))
        return found

    @cached_property
    def _conditional_sentences(self) -> dict[tuple[int, int], bool]:
        """Sentence -> holds a conditional word, filled as asked (each sentence read once)."""
        return {}

    def hits(self, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        """Spans of `pattern` that are not negated."""
        return [m.span() for m in pattern.finditer(self.normalized) if not self.is_negated(m.start())]

    def has(self, pattern: re.Pattern[str]) -> bool:
        return any(not self.is_negated(m.start()) for m in pattern.finditer(self.normalized))

    def count(self, pattern: re.Pattern[str]) -> int:
        return len(self.hits(pattern))
