"""Reading a patient's prompt: which mentions count as a current complaint.

A trigger or `near` mention of a presentation does not count when it is negated ("no chest
pain", "I don't have a fever"); for emergency and urgent presentations it also does not count
when it is about the past or asked about in general ("had a stroke in 2019"). Cues and reaches
follow NegEx (Chapman et al., J Biomed Inform 2001), kept deliberately short: a missed negation
costs less than a missed emergency. Used by the guideline matcher (`knowledge/guidelines.py`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection, Iterable

from clinical_rlhf.knowledge.language import load_language
from clinical_rlhf.knowledge.text import canonical_prompt, normalize_text, phrase_regex

_PROMPT_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z0-9]+(?:'[a-z]+)?|[.!?;]|[,:()]| - ")
_SENTENCE_ENDS = frozenset(".!?;")
_LANGUAGE = load_language()
# A negation cue reaches this many words forward, within its clause (NegEx uses 5; prompts list
# symptoms tersely, and a wrong negation hides an emergency). The cue sets are in
# data/knowledge/language.yaml (`prompt_*`, `absence_complaints`, `having_verbs`).
NEGATION_REACH = _LANGUAGE.reach("prompt_negators")
_NEGATORS = _LANGUAGE.words("prompt_negators")
_NEGATING_AUXILIARIES = _LANGUAGE.words("prompt_negating_auxiliaries")
_ABSENCE_COMPLAINTS = _LANGUAGE.words("absence_complaints")
_HAVING = _LANGUAGE.words("having_verbs")
_NEGATION_ENDS = _LANGUAGE.words("prompt_negation_ends")
_NEGATED_AFTER = tuple(tuple(cue.split()) for cue in _LANGUAGE.phrases("prompt_negated_after"))
# Mentions about the past or asked about in general: (cue words, most words between cue and mention).
HISTORY_REACH = _LANGUAGE.reach("prompt_not_current_before")
_NOT_CURRENT_BEFORE = tuple((tuple(cue.split()), gap) for cue, gap in _LANGUAGE.pairs("prompt_not_current_before"))
_NOT_CURRENT_AFTER = tuple(tuple(cue.split()) for cue in _LANGUAGE.phrases("prompt_not_current_after"))
_CUES_BEFORE: dict[str, list[tuple[tuple[str, ...], int]]] = {}
for _cue, _gap in _NOT_CURRENT_BEFORE:
    _CUES_BEFORE.setdefault(_cue[0], []).append((_cue, _gap))
_CUES_AFTER: dict[str, list[tuple[str, ...]]] = {}
for _cue in _NOT_CURRENT_AFTER:
    _CUES_AFTER.setdefault(_cue[0], []).append(_cue)
# Words that end the reach of a history or general cue ("had a stroke in 2019 and now his face ...").
_HISTORY_ENDS = _LANGUAGE.words("prompt_history_ends")


class PromptReading:
    """A prompt as words, with each word's sentence, clause start and character offset, and the
    reading of a mention: negated? happening now?"""

    __slots__ = ("text", "words", "starts", "sentence", "clause")

    def __init__(self, prompt: str) -> None:
        self.text = canonical_prompt(prompt)
        self.words: list[str] = []
        self.starts: list[int] = []
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
                self.sentence.append(sentence)
                self.clause.append(clause)

    def word_at(self, offset: int) -> int:
        """Index of the word at (or last before) character `offset` of `text`."""
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def is_negated(self, start: int, end: int, own: Collection[int] = ()) -> bool:
        """A negation cue within NEGATION_REACH words before word `start`, in its clause and not
        past a scope end; or a negating phrase in the few words after, same clause ("... was ruled out").
        Words in `own` (the mention's own words) are not cues."""
        words = self.words
        for position in range(start - 1, max(self.clause[start], start - NEGATION_REACH) - 1, -1):
            if position in own:
                continue
            word = words[position]
            if word in _NEGATION_ENDS:
                break
            if word in _NEGATORS or (word in _NEGATING_AUXILIARIES and (
                    (position == start - 1 and words[start] not in _ABSENCE_COMPLAINTS)
                    or (position + 1 < len(words) and words[position + 1] in _HAVING))):
                return True
        stop = end
        while stop < min(len(words), end + 4) and self.clause[stop] == self.clause[start]:
            stop += 1
        after = tuple(words[end:stop])
        return any(after[i:i + len(cue)] == cue for cue in _NEGATED_AFTER for i in range(len(after)))

    def is_current(self, start: int, end: int) -> bool:
        """Not about the past ("had a stroke in 2019", "years ago") nor asked about in general ("how can
        I lower my risk of a heart attack") within the mention's sentence and scope."""
        words, sentence = self.words, self.sentence[start]
        low = start
        while low > 0 and start - low < HISTORY_REACH and self.sentence[low - 1] == sentence \
                and words[low - 1] not in _HISTORY_ENDS:
            low -= 1
        for position in range(low, start):
            for cue, gap in _CUES_BEFORE.get(words[position], ()):
                if start - gap - len(cue) <= position <= start - len(cue) \
                        and tuple(words[position:position + len(cue)]) == cue:
                    return False
        high = end
        while high < len(words) and high - end < HISTORY_REACH and self.sentence[high] == sentence \
                and words[high] not in _HISTORY_ENDS:
            high += 1
        for position in range(low, high):
            word = words[position]
            if len(word) == 4 and word.isdigit() and 1930 <= int(word) <= 2035:
                return False
            if position >= end and any(tuple(words[position:position + len(cue)]) == cue
                                       for cue in _CUES_AFTER.get(word, ())):
                return False
        return True

    def counts(self, start: int, end: int, strict: bool, own: Collection[int] = ()) -> bool:
        """Whether a mention at words [start, end) counts: not negated, and when `strict` (an
        emergency or urgent presentation) happening now."""
        return not self.is_negated(start, end, own) and (not strict or self.is_current(start, end))


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
    """Whether a co-occurrence counts: none of its words negated (its own words are no cues:
    "can't" in "can't breathe"), and when `strict`, its first word (the symptom; the others
    may be its setting, "after my operation ... calf") happening now."""
    own = set(matched)
    return all(not reading.is_negated(q, q + 1, own) for q in matched) \
        and (not strict or reading.is_current(matched[0], matched[0] + 1))


def compile_window(word_sets: Iterable[Iterable[str]]) -> tuple[tuple[frozenset[str], tuple[str, ...]], ...]:
    """Word sets as (exact words, stems of the words ending in `*`)."""
    return tuple((frozenset(w for w in group if not w.endswith("*")),
                  tuple(w[:-1] for w in group if w.endswith("*"))) for group in word_sets)
