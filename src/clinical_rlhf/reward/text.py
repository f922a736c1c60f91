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

from clinical_rlhf.knowledge.guidelines import normalize_text
from clinical_rlhf.knowledge.language import load_language

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?;\n]+")
_CLAUSE_BREAK = re.compile(r"[.;:!?()\n]| - |\bbut\b|\bhowever\b|\bthough\b")
_LANGUAGE = load_language()
# A comma ends a clause only when a new instruction starts after it ("don't panic, call 999");
# otherwise it separates list items that share the negation before them ("don't use ice, butter").
_COMMA_CLAUSE = re.compile(r",\s*(?=(?:" + "|".join(sorted(_LANGUAGE.words("instruction_verbs"))) + r")\b)")

# Words that turn the advice after them into its opposite ("do not take antibiotics").
NEGATORS = _LANGUAGE.words("answer_negators")
# Words that open a conditional clause: a negator after them negates the condition, not the advice
# ("if it doesn't improve call 999"), and advice inside them is conditional.
CONDITIONALS = _LANGUAGE.words("answer_conditionals")
# Words after a negator that turn it against the delay, not the advice: "don't hesitate to call
# 999", "do not wait to call an ambulance", "don't be afraid to ask your pharmacist".
NEGATION_RELEASES = _LANGUAGE.words("negation_releases")
NEGATION_WINDOW = _LANGUAGE.reach("answer_negators")
"""Words looked back from a phrase for a negator (within its clause)."""
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
        """Sorted offsets where a clause starts (after each break, and each comma before a new
        instruction)."""
        text = self.normalized
        return sorted([m.end() for m in _CLAUSE_BREAK.finditer(text)] + [m.end() for m in _COMMA_CLAUSE.finditer(text)])

    def clause_before(self, position: int) -> list[str]:
        """The words between the last clause start at or before `position` and `position`."""
        starts = self._clause_starts
        index = bisect.bisect_right(starts, position) - 1
        start = max(starts[index] if index >= 0 else 0, position - CLAUSE_CHARS_READ)
        return words(self.normalized[start:position])

    def is_negated(self, position: int) -> bool:
        """A negator among the few words before `position` in its clause, unless the negator sits
        inside a conditional opened earlier in the same clause ("if it doesn't improve, call 999")
        or is followed by a release ("don't hesitate to call 999")."""
        clause = self.clause_before(position)
        offset = max(0, len(clause) - NEGATION_WINDOW)
        for index in range(len(clause) - 1, offset - 1, -1):
            if clause[index] in NEGATORS:
                if any(word in NEGATION_RELEASES for word in clause[index + 1:]):
                    return False
                return not any(word in CONDITIONALS for word in clause[:index])
        return False

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
