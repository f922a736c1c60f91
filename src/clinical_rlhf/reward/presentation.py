"""What a prompt presents, as the reward sees it: the guidelines it matches and the knowledge
base's red flags it describes.

Two signals, one reading of the prompt (`PromptReading`: negated mentions never count, past and
general ones do not count as an emergency):

- the guideline file's own triggers and co-occurrences (`GuidelineMatcher`);
- the red flags of the knowledge base (`kb.red_flags`: triggers, `requires_any`, `near` rules,
  `exclusions`),
  maintained with the safety guard. They are read through the knowledge API, never copied: a
  phrase the guard engineer adds to `red_flags.yaml` reaches the reward with no change here. A
  recognised red flag matches the guidelines that list it (`red_flags:` in guidelines.yaml) and,
  when no matched guideline lists it, makes the prompt an emergency (`ScoringContext.urgency`).

Red-flag phrases are written as the guard reads text (`red_flags.yaml` header): case-folded,
apostrophes dropped ("cant"), other punctuation a space, the determiners below skipped on both
sides. The prompt is put in that form word by word, keeping each word's place in the reading so
that negation and history are judged on the words as written.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from clinical_rlhf.knowledge import RedFlag
from clinical_rlhf.knowledge.guidelines import (
    Guideline,
    GuidelineMatcher,
    PhraseFinder,
    PromptReading,
    compile_window,
    window_counts,
    window_hits,
)
from clinical_rlhf.knowledge.language import load_language
from clinical_rlhf.reward.coherence import topic_vocabulary

# The determiners `red_flags.yaml` documents as skipped on both sides of a match (language.yaml).
RED_FLAG_DETERMINERS = load_language().words("determiners")
_BREAK = "|"


def red_flag_form(text: str) -> list[str]:
    """Words of a red-flag phrase as the guard reads them ("can't lift my arm" -> cant lift arm)."""
    cleaned = "".join(c if c.isalnum() else " " for c in text.casefold().replace("'", "").replace("\u2019", ""))
    return [w for w in cleaned.split() if w not in RED_FLAG_DETERMINERS]


class RedFlagRecogniser:
    """Ids of the knowledge base's red flags that a prompt describes as happening now.

    Naive equivalent: a flag is recognised when one of its triggers occurs as consecutive words
    of the prompt (red-flag form, within one clause), or one of its `near` rules finds one word
    of each set within reach in one sentence; the occurrence must not overlap one of the flag's
    `exclusions` ("head cold" is no head injury) and must be neither negated nor past or general
    (`PromptReading.counts(strict=True)`); and, for a flag with `requires_any`, one of those
    phrases must occur, not negated."""

    def __init__(self, red_flags: Iterable[RedFlag]) -> None:
        self.flags = tuple(red_flags)
        self._owners = _owners((flag.id, flag.triggers) for flag in self.flags)
        self._requirement_owners = _owners((flag.id, flag.requires_any) for flag in self.flags)
        # `exclusions` arrived with a later knowledge-base version; older ones have none.
        self._exclusion_owners = _owners((flag.id, getattr(flag, "exclusions", ())) for flag in self.flags)
        self._finder = PhraseFinder({*self._owners, *self._requirement_owners, *self._exclusion_owners})
        self._windows = tuple((flag.id, compile_window(rule.word_sets), rule.within)
                              for flag in self.flags for rule in flag.near)
        self._conditional = frozenset(flag.id for flag in self.flags if flag.requires_any)

    def recognise(self, reading: PromptReading) -> frozenset[str]:
        """Ids of the red flags the prompt describes as happening now."""
        text, words, index = _red_flag_text(reading)
        if not words:
            return frozenset()
        word_at, cursor = {}, 0
        for piece in text.split(" "):
            if piece != _BREAK:
                word_at[cursor] = len(word_at)
            cursor += len(piece) + 1
        # (flag id, first word, last word + 1, the words of a co-occurrence or None for a phrase)
        hits: list[tuple[str, int, int, tuple[int, ...] | None]] = []
        excluded: list[tuple[str, int, int]] = []
        satisfied: set[str] = set()
        for phrase, start, _ in self._finder.find(text):
            first = word_at[start]
            last = first + phrase.count(" ") + 1
            hits += [(flag, first, last, None) for flag in self._owners.get(phrase, ())]
            excluded += [(flag, first, last) for flag in self._exclusion_owners.get(phrase, ())]
            if phrase in self._requirement_owners and not reading.is_negated(index[first], index[last - 1] + 1):
                satisfied |= self._requirement_owners[phrase]
        sentence = [reading.sentence[i] for i in index]
        present = frozenset(words)
        for flag, window, within in self._windows:
            # Tried only when every set has a word of the prompt (cheap set tests first).
            if not all(not present.isdisjoint(exact) or (stems and any(w.startswith(stems) for w in present))
                       for exact, stems in window):
                continue
            hits += [(flag, min(matched), max(matched) + 1, tuple(matched))
                     for matched in window_hits(words, sentence, window, within)]
        found: set[str] = set()
        for flag, first, last, matched in hits:
            if flag in found or (flag in self._conditional and flag not in satisfied):
                continue
            if any(other == flag and low < last and first < high for other, low, high in excluded):
                continue
            if matched is None:
                if reading.counts(index[first], index[last - 1] + 1, strict=True):
                    found.add(flag)
                continue
            if window_counts(reading, list(dict.fromkeys(index[q] for q in matched)), strict=True):
                found.add(flag)
        return frozenset(found)


def _owners(pairs: Iterable[tuple[str, Iterable[str]]]) -> dict[str, frozenset[str]]:
    """Phrase (red-flag form) -> ids of the flags that list it."""
    owners: dict[str, set[str]] = {}
    for flag_id, phrases in pairs:
        for phrase in phrases:
            form = " ".join(red_flag_form(phrase))
            if form:
                owners.setdefault(form, set()).add(flag_id)
    return {phrase: frozenset(ids) for phrase, ids in owners.items()}


def _red_flag_text(reading: PromptReading) -> tuple[str, list[str], list[int]]:
    """The prompt in red-flag form: the text (a break between clauses and sentences, so no phrase
    spans one), its words, and the reading's index of the word each comes from."""
    parts: list[str] = []
    words: list[str] = []
    index: list[int] = []
    last = (-1, -1)
    for position, word in enumerate(reading.words):
        place = (reading.sentence[position], reading.clause[position])
        if place != last and parts:
            parts.append(_BREAK)
        last = place
        for piece in red_flag_form(word):
            parts.append(piece)
            words.append(piece)
            index.append(position)
    return " ".join(parts), words, index


@dataclass(frozen=True, slots=True)
class Presentation:
    """What one prompt presents."""

    reading: PromptReading
    guidelines: tuple[Guideline, ...]
    red_flags: frozenset[str]
    """Knowledge-base red flags recognised in the prompt by the reward itself."""
    topic: frozenset[str]
    """Content stems of the matched guidelines (the coherence scorer's topic vocabulary)."""


class PresentationReader:
    """Reads prompts into `Presentation`s: guideline matches through the guidelines' own wording
    and through the red flags, read once per prompt."""

    def __init__(self, guidelines: tuple[Guideline, ...], red_flags: Iterable[RedFlag]) -> None:
        self.matcher = GuidelineMatcher(guidelines)
        self.recogniser = RedFlagRecogniser(red_flags)
        self._topics: dict[tuple[str, ...], frozenset[str]] = {}

    def read(self, prompt: str, extra_red_flags: Collection[str] = ()) -> Presentation:
        """`extra_red_flags`: red-flag ids found by someone else (the guard's verdict on the
        prompt); they match guidelines too."""
        reading = PromptReading(prompt)
        flags = self.recogniser.recognise(reading)
        matched = self.matcher.match(reading, flags | frozenset(extra_red_flags))
        key = tuple(g.id for g in matched)
        topic = self._topics.get(key)
        if topic is None:       # few distinct sets of guidelines: computed once each
            topic = self._topics[key] = topic_vocabulary(matched)
        return Presentation(reading, matched, flags, topic)
