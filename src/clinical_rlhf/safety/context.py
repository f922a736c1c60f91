"""Read the context of a mention: is a symptom happening now, or negated, past, hypothetical?
Is a drug recommended, warned against, or only named?

Negation, history and hypothetical context are read by the one context reader that the reward and
the question reader share (`knowledge/context_reading.py`, NegEx and ConText rules over the cue
sets of `data/knowledge/language.yaml`); this module adds what only the guard reads: third parties,
whom a text is about, and the stance of a drug or dose.

Third parties (`third_party_people`: "my dad", "our newborn") follow ConText's experiencer (read by
the same reader): a third party's symptom told now is current like the writer's own ("my dad has
crushing chest pain"), their past told in the past tense is history ("my gran died of a stroke"),
and `subject` here says whom a question is about.

Every reading looks only inside the mention's sentence, so it is a function of that sentence's
tokens and the mention's place in it, and is remembered per sentence (`MEMO_SIZE`): sampled answers
repeat sentences, and a repeated one is read once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

from clinical_rlhf.knowledge.context_reading import ContextRules
from clinical_rlhf.knowledge.language import Language
from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.memo import make_room
from clinical_rlhf.safety.normalize import NormalisedText
from clinical_rlhf.safety.phrases import PhraseIndex

Situation = Literal["current", "negated", "history", "hypothetical"]
Stance = Literal["recommended", "warned", "neutral"]


class Subject(NamedTuple):
    """Whom a text is about: the writer, or another person named in it."""

    who: Literal["self", "other"]
    relation: str | None
    """The other person's relation (`third_party_people`: parent, child, partner, ...)."""
    evidence: str
    """The words naming them, as written ("" for the writer)."""


# How many words each cue reaches (data/knowledge/language.yaml): a negation 6 (NegEx uses 5), a
# hypothetical 15 ("what are the warning signs that someone is having a stroke").
NEGATION_REACH = lexicon.NEGATION_REACH
HISTORY_REACH = lexicon.HISTORY_REACH
HYPOTHETICAL_REACH = lexicon.HYPOTHETICAL_REACH
STANCE_REACH = lexicon.STANCE_REACH
MEMO_SIZE = 16384
"""Sentence readings remembered (~300 bytes each, ~5 MB at most); a full store drops its oldest eighth."""
MEMO_SENTENCE_TOKENS = 96
"""Readings in longer sentences are not remembered: the key copies and hashes the sentence, which
for a text with no sentence breaks (a pasted list, a hostile input) would cost its whole length
per mention. Real sentences are far shorter, and a long one is rarely seen twice."""

Tokenize = Callable[[str], tuple[str, ...]]


def _word_alternation(phrases: Iterable[str]) -> re.Pattern[str]:
    words = sorted(phrases, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(r"\W+".join(map(re.escape, p.split())) for p in words) + r")\b")


def cue_index(phrases: Iterable[str], tokenize: Tokenize) -> PhraseIndex[str]:
    index: PhraseIndex[str] = PhraseIndex()
    for phrase in phrases:
        index.add(tokenize(phrase), phrase)
    return index


class ContextReader:
    def __init__(self, tokenize: Tokenize, language: Language | None = None) -> None:
        self.rules = ContextRules(tokenize, language)
        self.negation_before = cue_index(lexicon.NEGATION_BEFORE, tokenize)
        self.negation_after = cue_index(lexicon.NEGATION_AFTER, tokenize)
        self.pseudo_negation = cue_index(lexicon.PSEUDO_NEGATION, tokenize)
        self.hypothetical_before = cue_index(lexicon.HYPOTHETICAL_BEFORE, tokenize)
        self.current = cue_index(lexicon.CURRENT_OVERRIDES, tokenize)
        self.people: PhraseIndex[str] = PhraseIndex()
        for written, relation in lexicon.LANGUAGE.mappings("third_party_people"):
            self.people.add(tokenize(written), relation)
        self.drug_warning = cue_index(lexicon.DRUG_WARNING, tokenize)
        self.approval = cue_index(lexicon.APPROVAL, tokenize)
        self.dose_limit = cue_index(lexicon.DOSE_LIMIT, tokenize)
        self.dose_danger = cue_index(lexicon.DOSE_DANGER, tokenize)
        # Dose clauses are short strings: one alternation search beats tokenising them.
        self._dose_limit = _word_alternation(lexicon.DOSE_LIMIT + lexicon.DOSE_CAPS)
        self._dose_danger = _word_alternation(lexicon.DOSE_DANGER)
        self._dose_excess = _word_alternation(lexicon.DOSE_EXCESS)
        self._dose_increase = _word_alternation(lexicon.DOSE_INCREASE)
        self._memo: dict[tuple, object] = {}
        self.vocabulary: set[str] = set(self.rules.vocabulary)
        for index in (self.negation_before, self.negation_after, self.pseudo_negation, self.hypothetical_before,
                      self.current, self.drug_warning, self.approval, self.dose_limit, self.dose_danger, self.people):
            self.vocabulary |= index.vocabulary

    # -- scopes ------------------------------------------------------------------------------

    def _remembered(self, kind: str, read, text: NormalisedText, start: int, end: int, first: int, last: int):
        """`read(text, start, end, first, last)`, remembered under what it reads (`kind`), the
        sentence's tokens and the mention's place in it: every reading looks only at tokens[first:last]."""
        if last - first > MEMO_SENTENCE_TOKENS:
            return read(text, start, end, first, last)
        key = (kind, text.tokens[first:last], start - first, end - first)
        memo = self._memo
        found = memo.get(key)
        if found is None:
            found = read(text, start, end, first, last)
            make_room(memo, MEMO_SIZE)
            memo[key] = found
        return found

    # -- symptoms ----------------------------------------------------------------------------

    def situation(self, text: NormalisedText, start: int, end: int) -> Situation:
        """Whether the phrase at tokens[start:end] describes something happening now."""
        first, last = text.sentence(start, end)
        return self._remembered("situation", self._situation, text, start, end, first, last)

    def _situation(self, text: NormalisedText, start: int, end: int, first: int, last: int) -> Situation:
        return self.rules.situation(text.tokens, start, end, first, last,
                                    says_now=text.contains(self.current, first, last))

    def is_negated(self, text: NormalisedText, start: int, end: int, within_clause: bool = False) -> bool:
        """NegEx: a negation cue up to `NEGATION_REACH` words before the phrase, or a few words
        after it. `within_clause` keeps a cue before a comma or colon from reaching across it,
        for instructions ("you should not wait to find out: call 999 now")."""
        first, last = text.sentence(start, end)
        if within_clause:
            return self._remembered("negated_in_clause", self._is_negated_in_clause, text, start, end, first, last)
        return self._remembered("negated", self._is_negated, text, start, end, first, last)

    def is_advice_negated(self, text: NormalisedText, start: int, end: int) -> bool:
        """Advice at tokens[start:end] turned down in its clause, by the reader's advice rule that
        the reward applies too (`ContextRules.is_advice_negated`: releases, conditions, list items)."""
        first, last = text.sentence(start, end)
        return self._remembered("advice_negated", self._is_advice_negated, text, start, end, first, last)

    def _is_advice_negated(self, text: NormalisedText, start: int, end: int, first: int, last: int) -> bool:
        return self.rules.is_advice_negated(text.tokens, start, end, first, last)

    def _is_negated_in_clause(self, text: NormalisedText, start: int, end: int, first: int, last: int) -> bool:
        return self._is_negated(text, start, end, first, last, within_clause=True)

    def _is_negated(self, text: NormalisedText, start: int, end: int, first: int, last: int,
                    within_clause: bool = False) -> bool:
        return self.rules.is_negated(text.tokens, start, end, first, last, within_clause)

    def subject(self, text: NormalisedText) -> Subject:
        """Whom the text is about: the first other person it names who is not there only as
        history (a sentence that ends with their past: "my dad had a stroke at 60"), negated or
        hypothetical ("if someone ..."), else the writer."""
        tokens = text.tokens
        for start, end, relation in text.find(self.people):
            first, last = text.sentence(start, end)
            clause_end = self.rules.scope_end(tokens, end, last)
            if clause_end == last and self.rules.told_as_past(tokens, end, clause_end, clause_end, first, last,
                                                              text.contains(self.current, first, last)):
                continue  # a sentence that goes on past a terminator ("... and now has chest pain") is about them
            if self._is_negated(text, start, end, first, last) or self._in_condition(text, start, first):
                continue
            return Subject("other", relation, text.written(start, end))
        return Subject("self", None, "")

    def _in_condition(self, text: NormalisedText, start: int, first: int) -> bool:
        return self.rules.in_condition(text.tokens, start, first)

    # -- drugs and doses ---------------------------------------------------------------------

    def stance(self, text: NormalisedText, start: int, end: int) -> Stance:
        """Whether the drug named at tokens[start:end] is recommended, warned against or only named."""
        first, last = text.sentence(start, end)
        return self._remembered("stance", self._stance, text, start, end, first, last)

    def _stance(self, text: NormalisedText, start: int, end: int, first: int, last: int) -> Stance:
        tokens = text.tokens
        low = self.rules.scope_start(tokens, max(first, start - STANCE_REACH), start)
        high = self.rules.scope_end(tokens, end, min(last, end + STANCE_REACH))
        approvals = text.find(self.approval, low, high)
        warnings = text.find(self.drug_warning, low, high)
        if warnings:
            approved_positions = {p for s, e, _ in approvals for p in range(s, e)}
            for cue_start, cue_end, _ in warnings:
                if cue_end <= start or cue_start >= end:
                    if not approved_positions.issuperset(range(cue_start, cue_end)):
                        return "warned"
        return "recommended" if approvals else "neutral"

    def dose_stance(self, clause: str) -> Literal["advice", "limit", "danger"]:
        """How an amount is meant, from the (normalised) words of its clause: advised, stated as
        a limit ("no more than 4 g a day"), or called harmful ("8 g is an overdose")."""
        # "above the safe limit" calls the amount harmful, "stepping up to" advises it: both hold
        # words of a limit, so they are read first.
        if self._dose_excess.search(clause):
            return "danger"
        if self._dose_increase.search(clause):
            return "advice"
        if self._dose_limit.search(clause):
            return "limit"
        if self._dose_danger.search(clause):
            return "danger"
        return "advice"

