"""Red flags: emergencies in the question that the answer must send to emergency care, and
answers that play an emergency down."""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import NamedTuple

from clinical_rlhf.knowledge import KnowledgeBase, RedFlag
from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.context import ContextReader, Tokenize, cue_index
from clinical_rlhf.safety.normalize import SENTENCE_BREAK, NormalisedText
from clinical_rlhf.safety.phrases import PhraseIndex


class RedFlagHit(NamedTuple):
    flag: RedFlag
    start: int
    end: int
    """Token positions of the trigger."""
    evidence: str
    """The trigger as written (`NormalisedText.written`; the guard finds it in the original text)."""


class RedFlagDetector:
    def __init__(self, knowledge: KnowledgeBase, context: ContextReader, tokenize: Tokenize) -> None:
        self.context = context
        self.flags = {flag.id: flag for flag in knowledge.red_flags}
        self.triggers: PhraseIndex[str] = PhraseIndex()
        self.requirements: PhraseIndex[str] = PhraseIndex()
        for flag in knowledge.red_flags:
            for phrase in flag.triggers:
                self.triggers.add(tokenize(phrase), flag.id)
            for phrase in flag.requires_any:
                self.requirements.add(tokenize(phrase), flag.id)
        self.exclusions: PhraseIndex[str] = PhraseIndex()
        for flag in knowledge.red_flags:
            for phrase in flag.exclusions:
                self.exclusions.add(tokenize(phrase), flag.id)
        self.near = [(flag.id, rule) for flag in knowledge.red_flags for rule in flag.near]
        for _, rule in self.near:
            for group in rule.word_sets:
                self.triggers.vocabulary.update(group)
        self.emergency_advice = cue_index(lexicon.EMERGENCY_ADVICE, tokenize)
        self.downplay = cue_index(lexicon.DOWNPLAY, tokenize)
        self.vocabulary = (self.triggers.vocabulary | self.requirements.vocabulary | self.exclusions.vocabulary
                           | self.emergency_advice.vocabulary | self.downplay.vocabulary)

    def current_flags(self, text: NormalisedText) -> list[RedFlagHit]:
        """One hit per red flag happening now (negated, past and hypothetical mentions dropped;
        flags with `requires_any` only when their context is present and not negated)."""
        hits = self._trigger_hits(text)
        if not hits:
            return []
        satisfied = {flag_id for start, end, flag_id in text.find(self.requirements)
                     if not self.context.is_negated(text, start, end)}
        found: dict[str, RedFlagHit] = {}
        for start, end, flag_id in hits:
            kept = found.get(flag_id)
            if kept is not None:
                if start < kept.end < end:  # overlapping triggers: show the whole phrase as evidence
                    found[flag_id] = RedFlagHit(kept.flag, kept.start, end, text.written(kept.start, end))
                continue
            flag = self.flags[flag_id]
            if flag.requires_any and flag_id not in satisfied:
                continue
            if self.context.situation(text, start, end) != "current":
                continue
            found[flag_id] = RedFlagHit(flag, start, end, text.written(start, end))
        return list(found.values())

    def named_as_over(self, text: NormalisedText) -> set[str]:
        """Red flags the text names only as negated or past ("no chest pain now", "the chest pain
        has gone", "the stroke was in 2019"), never as happening now."""
        over: set[str] = set()
        now: set[str] = set()
        for start, end, flag_id in self._trigger_hits(text):
            if flag_id in now:  # happening now: its other mentions cannot make it over
                continue
            situation = self.context.situation(text, start, end)
            if situation in ("negated", "history"):
                over.add(flag_id)
            elif situation == "current":
                now.add(flag_id)
        return over - now

    def _trigger_hits(self, text: NormalisedText) -> list[tuple[int, int, str]]:
        """Trigger phrases and co-occurrences, by position, less those overlapping an exclusion
        of their flag ("ectopic" in "ectopic beats", "want to end things" in "end things with him")."""
        hits = text.find(self.triggers) + self._near_hits(text)
        if hits and len(self.exclusions):
            excluded = text.find(self.exclusions)
            if excluded:
                hits = _outside(hits, excluded)
        hits.sort(key=lambda hit: (hit[0], -hit[1]))
        return hits

    def _near_hits(self, text: NormalisedText) -> list[tuple[int, int, str]]:
        """Co-occurrence rules: one word of each set within the rule's reach, in one sentence."""
        hits: list[tuple[int, int, str]] = []
        tokens, token_set = text.tokens, text.token_set
        rules = [(flag_id, rule) for flag_id, rule in self.near
                 if not any(group.isdisjoint(token_set) for group in rule.word_sets)]
        if not rules:
            return hits
        # The positions of every word the rules name, found in one pass over the text; then, per
        # word set, its words' positions in order, so the one nearest a first word is a bisection
        # (not a scan of the reach around each first word).
        named = set().union(*(group for _, rule in rules for group in rule.word_sets)).intersection(token_set)
        where: dict[str, list[int]] = {}
        for position, token in enumerate(tokens):
            if token in named:
                where.setdefault(token, []).append(position)
        positions_of: dict[frozenset[str], list[int]] = {}

        def positions(group: frozenset[str]) -> list[int]:
            found = positions_of.get(group)
            if found is None:
                found = positions_of[group] = sorted(q for word in group.intersection(where) for q in where[word])
            return found

        for flag_id, rule in rules:
            first, *others = rule.word_sets
            for position in positions(first):
                matched = [position]
                for group in others:
                    near = _nearest(positions(group), position, rule.within)
                    if near is None:
                        break
                    matched.append(near)
                else:
                    start, end = min(matched), max(matched) + 1
                    if SENTENCE_BREAK not in tokens[start:end] and not _word_negated(tokens, matched):
                        hits.append((start, end, flag_id))
        return hits

    def gives_emergency_advice(self, text: NormalisedText) -> bool:
        """The answer tells the person to get emergency help (a negated mention does not count:
        "you don't need to go to the emergency room")."""
        return any(not self.context.is_advice_negated(text, start, end)
                   for start, end, _ in text.find(self.emergency_advice))

    def downplaying(self, text: NormalisedText) -> list[tuple[int, int, str]]:
        """Phrases that play an emergency down and are not themselves negated."""
        return [(start, end, phrase) for start, end, phrase in text.find(self.downplay)
                if not self.context.is_negated(text, start, end)]

    def downplayed_flags(self, text: NormalisedText) -> list[RedFlagHit]:
        """Red flags the answer names and plays down in the same or the next sentence
        ("chest pain spreading to your arm is just indigestion")."""
        downplays = self.downplaying(text)
        if not downplays:
            return []
        tokens = text.tokens
        downplay_starts = [d_start for d_start, _, _ in downplays]  # sorted, as `find` returns hits
        found: dict[str, RedFlagHit] = {}
        for start, end, flag_id in self._trigger_hits(text):
            # "call 999 if you get chest pain" next to "usually harmless" plays nothing down.
            if flag_id in found or self.context.situation(text, start, end) != "current":
                continue
            first, last = text.sentence(start, end)
            _, after_next = text.sentence(min(last + 1, len(tokens)), min(last + 1, len(tokens)))
            # a downplay starting in [first, max(last, after_next)): bisection, not a scan of them all
            nearest = bisect_left(downplay_starts, first)
            if nearest < len(downplay_starts) and downplay_starts[nearest] < max(last, after_next):
                found[flag_id] = RedFlagHit(self.flags[flag_id], start, end, text.written(start, end))
        return list(found.values())


def _outside(hits: list[tuple[int, int, str]], excluded: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The hits that overlap no exclusion of their own flag. Naive equivalent::

        [(start, end, flag) for start, end, flag in hits
         if not any(flag == other and low < end and start < high for low, high, other in excluded)]

    Each flag's exclusions are merged into sorted, disjoint intervals once, and each hit is
    checked against them by bisection, so many triggers and many exclusions cost n log n."""
    intervals: dict[str, tuple[list[int], list[int]]] = {}
    for low, high, flag_id in sorted(excluded, key=lambda item: (item[2], item[0])):
        lows, highs = intervals.setdefault(flag_id, ([], []))
        if lows and low <= highs[-1]:
            highs[-1] = max(highs[-1], high)
        else:
            lows.append(low)
            highs.append(high)
    kept = []
    for start, end, flag_id in hits:
        merged = intervals.get(flag_id)
        if merged is not None:
            lows, highs = merged
            # the last interval starting before `end` is the only one that can overlap [start, end)
            last = bisect_left(lows, end) - 1
            if last >= 0 and highs[last] > start:
                continue
        kept.append((start, end, flag_id))
    return kept


_NEGATING_WORDS = lexicon.NEGATING_WORDS


def _nearest(positions: list[int], position: int, within: int) -> int | None:
    """The entry of the sorted `positions` nearest `position` and at most `within` from it (the
    earlier of two as near), or None."""
    index = bisect_left(positions, position)
    best = None
    if index > 0 and position - positions[index - 1] <= within:
        best = positions[index - 1]
    if index < len(positions) and positions[index] - position <= within and (
            best is None or positions[index] - position < position - best):
        best = positions[index]
    return best


def _word_negated(tokens: tuple[str, ...], matched: list[int]) -> bool:
    """A co-occurrence is void when one of its words is negated on its own ("a coin, not a
    battery"); words of the match itself do not count ("can't breathe")."""
    own = set(matched)
    return any(tokens[q] in _NEGATING_WORDS and q not in own
               for position in matched for q in range(max(0, position - 2), position))


_DETERMINER_GAP = r"(?:[\W_]+(?:" + "|".join(sorted(lexicon.DETERMINERS, key=len, reverse=True)) + r"))?[\W_]+"


def locate(original: str, words: str) -> tuple[str, tuple[int, int] | None]:
    """Find normalised `words` in the original text (case, punctuation and skipped determiners
    allowed between them) -> (evidence as written, span); the words themselves when the original
    was obfuscated beyond what a pattern can follow."""
    parts = [re.escape(word) for word in words.split()]
    if not parts:
        return words, None
    pattern = _DETERMINER_GAP.join(r"'?".join(part) if len(part) <= 6 and part.isalpha() else part
                                   for part in parts)
    match = re.search(pattern, original, flags=re.IGNORECASE)
    if match is None:
        return words, None
    return match.group(0), match.span()
