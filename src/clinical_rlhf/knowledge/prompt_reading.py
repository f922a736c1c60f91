"""Reading a patient's prompt: which mentions count as a current complaint.

A trigger or `near` mention of a presentation does not count when it is negated ("no chest
pain", "I don't have a fever"); for emergency and urgent presentations it also does not count
when it is about the past or asked about in general ("had a stroke in 2019"). Both are read by
the one context reader the guard and the reward share (`knowledge/context_reading.py`), so the
guideline matcher and the guard cannot disagree about a mention. Used by the guideline matcher
(`knowledge/guidelines.py`) and the reward's presentation reader.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from clinical_rlhf.knowledge.context_reading import TokenReading, shared_rules
from clinical_rlhf.knowledge.text import canonical_prompt, normalize_text, phrase_regex

_PROMPT_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z0-9]+(?:'[a-z]+)?|[.!?;]|[,:()]| - ")
_SENTENCE_ENDS = frozenset(".!?;")


class PromptReading:
    """A prompt as words, with each word's sentence, clause start and character offset, and the
    reading of a mention: negated? happening now?"""

    __slots__ = ("text", "words", "starts", "ends", "sentence", "clause", "context")

    def __init__(self, prompt: str) -> None:
        self.text = canonical_prompt(prompt)
        self.words: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.sentence: list[int] = []
        self.clause: list[int] = []
        sentence = clause = 0
        for match in _PROMPT_TOKEN.finditer(self.text):
            token = match.group()
            if token in _SENTENCE_ENDS:
                sentence, clause = sentence + 1, len(self.words)
            elif not token[0].isalnum():
                clause = len(self.words)
            else:
                self.words.append(token)
                self.starts.append(match.start())
                self.ends.append(match.end())
                self.sentence.append(sentence)
                self.clause.append(clause)
        self.context = TokenReading(self.text, shared_rules())

    def word_at(self, offset: int) -> int:
        """Index of the word at (or last before) character `offset` of `text`."""
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def is_negated(self, start: int, end: int) -> bool:
        """Whether the mention at words [start, end) is negated ("no chest pain"), as the one
        context reader reads it (`knowledge.context_reading`)."""
        return self.context.is_negated(self.starts[start], self.ends[end - 1])

    def is_current(self, start: int, end: int) -> bool:
        """Not about the past ("had a stroke in 2019") nor hypothetical or asked about in general
        ("how can I lower my risk of a heart attack"), as the one context reader reads it."""
        return self.context.is_current(self.starts[start], self.ends[end - 1])

    def counts(self, start: int, end: int, strict: bool) -> bool:
        """Whether a mention at words [start, end) counts: not negated, and when `strict` (an
        emergency or urgent presentation) happening now."""
        return not self.is_negated(start, end) and (not strict or self.is_current(start, end))


class PhraseFinder:
    """Every occurrence of a set of phrases in normalised text, overlapping and nested ones too,
    with one precompiled pattern.

    Naive equivalent: `[(p, m.start(), m.end()) for p in phrases for m in
    re.finditer(phrase_regex([p]), text)]`. A zero-width lookahead lets the single pattern report
    the longest phrase at every start position; the phrases hidden inside it are recovered by
    looking up its word-bounded substrings (`_contained`, once per distinct matched string)."""

    def __init__(self, phrases: Iterable[str]) -> None:
        phrases = {normalize_text(p) for p in phrases}
        self._pattern = re.compile(r"(?=(" + phrase_regex(phrases) + r"))")
        self._exact = frozenset(p for p in phrases if not p.endswith("*"))
        self._stems = tuple(p[:-1] for p in phrases if p.endswith("*"))
        self._contained_cache: dict[str, tuple[tuple[str, int, int], ...]] = {}

    def _contained(self, matched: str) -> tuple[tuple[str, int, int], ...]:
        found = self._contained_cache.get(matched)
        if found is None:
            starts = [m.start() for m in _WORD_START.finditer(matched)]
            ends = [e for e in range(1, len(matched) + 1) if e == len(matched) or not _is_word(matched[e])]
            hits = [(matched[s:e], s, e) for s in starts for e in ends if e > s and matched[s:e] in self._exact]
            for stem in self._stems:
                for s in starts:
                    if matched.startswith(stem, s):
                        e = s + len(stem)
                        while e < len(matched) and _is_word(matched[e]):
                            e += 1
                        hits.append((stem + "*", s, e))
            found = self._contained_cache[matched] = tuple(hits)
        return found

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """(phrase, start, end) character spans, each occurrence once."""
        found: set[tuple[str, int, int]] = set()
        for match in self._pattern.finditer(text):
            base = match.start()
            found.update((p, base + s, base + e) for p, s, e in self._contained(match.group(1)))
        return sorted(found, key=lambda hit: (hit[1], hit[2]))


_WORD_START = re.compile(r"(?<!\w)\w")


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def window_hits(words: list[str], sentence: list[int], window: tuple[tuple[frozenset[str], tuple[str, ...]], ...],
                within: int) -> list[list[int]]:
    """Word positions of each co-occurrence: a word of the first set, and for every other set the
    nearest of its words within `within` words in the same sentence. A set is (exact words, stems).

    Naive equivalent: for every position p holding a first-set word, for every other set the
    nearest q != p with |q - p| <= within, same sentence, holding one of its words."""
    positions = []
    for exact, stems in window:
        found = [i for i, word in enumerate(words) if word in exact or (stems and word.startswith(stems))]
        if not found:
            return []
        positions.append(found)
    hits = []
    first, *others = positions
    for position in first:
        matched = [position]
        for group in others:
            # only the group's positions within reach (bisection: each list is sorted), so a text
            # full of the same words costs its length times the reach, not its length squared
            nearby = group[bisect.bisect_left(group, position - within):bisect.bisect_right(group, position + within)]
            reach = [q for q in nearby if q != position and sentence[q] == sentence[position]]
            if not reach:
                break
            matched.append(min(reach, key=lambda q: abs(q - position)))
        else:
            hits.append(matched)
    return hits


def window_counts(reading: PromptReading, matched: list[int], strict: bool) -> bool:
    """Whether a co-occurrence counts: none of its words negated, and when `strict`, its first
    word (the symptom; the others may be its setting, "after my operation ... calf") happening now."""
    return all(not reading.is_negated(q, q + 1) for q in matched) \
        and (not strict or reading.is_current(matched[0], matched[0] + 1))


def compile_window(word_sets: Iterable[Iterable[str]]) -> tuple[tuple[frozenset[str], tuple[str, ...]], ...]:
    """Word sets as (exact words, stems of the words ending in `*`)."""
    return tuple((frozenset(w for w in group if not w.endswith("*")),
                  tuple(w[:-1] for w in group if w.endswith("*"))) for group in word_sets)
