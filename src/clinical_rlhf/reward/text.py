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

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?;\n]+")
_CLAUSE_BREAK = re.compile(r"[.;:!?()\n]| - |\bbut\b|\bhowever\b|\bthough\b")
# A comma ends a clause only when a new instruction starts after it ("don't panic, call 999");
# otherwise it separates list items that share the negation before them ("don't use ice, butter").
_COMMA_CLAUSE = re.compile(r",\s*(?=(?:call|dial|ring|phone|go|get|seek|see|contact|take|give|use|keep|drink|"
                           r"rest|try|ask|speak|talk|book|make|stay|sit|lie|apply|put|cool|run|wash|"
                           r"tell|let|follow|check|start|stop|continue)\b)")

# Words that turn the advice after them into its opposite ("do not take antibiotics").
NEGATORS = frozenset({
    "not", "no", "never", "don't", "dont", "doesn't", "isn't", "aren't", "won't", "shouldn't",
    "mustn't", "can't", "cannot", "avoid", "avoiding", "without", "nor", "neither", "instead",
    "rather", "unnecessary", "refrain", "needn't", "wouldn't", "didn't", "than",
})
# Words that open a conditional clause: a negator after them negates the condition, not the advice
# ("if it doesn't improve call 999"), and advice inside them is conditional.
CONDITIONALS = frozenset({"if", "unless", "when", "whenever", "case"})
# Words after a negator that turn it against the delay, not the advice: "don't hesitate to call
# 999", "do not wait to call an ambulance", "don't be afraid to ask your pharmacist".
NEGATION_RELEASES = frozenset({"hesitate", "delay", "wait", "afraid", "scared", "worry", "embarrassed", "forget"})
NEGATION_WINDOW = 5
"""Words looked back from a phrase for a negator (within its clause)."""


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
    def words(self) -> list[str]:
        return words(self.normalized)

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        return sentence_spans(self.normalized)

    def sentence_of(self, position: int) -> tuple[int, int]:
        for start, end in self.sentences:
            if start <= position <= end:
                return start, end
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
        start = starts[index] if index >= 0 else 0
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
        start, end = self.sentence_of(position)
        return any(word in CONDITIONALS for word in words(self.normalized[start:end]))

    def hits(self, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        """Spans of `pattern` that are not negated."""
        return [m.span() for m in pattern.finditer(self.normalized) if not self.is_negated(m.start())]

    def has(self, pattern: re.Pattern[str]) -> bool:
        return any(not self.is_negated(m.start()) for m in pattern.finditer(self.normalized))

    def count(self, pattern: re.Pattern[str]) -> int:
        return len(self.hits(pattern))
