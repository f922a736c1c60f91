"""The one reader of a mention's context: is it negated, past, hypothetical, or happening now?

The guard (`safety/context.py`), the reading of a patient's question behind guideline matching
(`knowledge/prompt_reading.py`) and the reward's reading of an answer's advice (`reward/text.py`)
all ask this reader, with the same cue data and the same reach (`data/knowledge/language.yaml`),
so they cannot disagree about "no chest pain".

It reads tokens as the guard does: lower case, apostrophes dropped ("don't" is "dont"), the
`determiners` dropped, `SENTENCE_BREAK` at a sentence end and `CLAUSE_BREAK` at a comma or colon
(`text_tokens` makes them from any text). Rules, after NegEx (Chapman et al., J Biomed Inform
2001;34:301-10) and ConText (Harkema et al., J Biomed Inform 2009;42:839-51):

- a comma followed by a `clause_subjects` word ("no fever, I just feel tired"), or "and" followed
  by one or by a `clause_predicates` verb ("not feeding and has a fever"), starts a new clause
  that no cue before it reaches; any other comma joins list items ("no fever, cough or rash");
- a finding is negated by a `negation_before` cue up to its reach before it, or a
  `negation_after` cue a few words after it (a `resolution_after` cue, "has gone", only where it
  ends its clause: "the pain has gone", not "her hand has gone floppy"); a cue inside a `pseudo_negation` ("not sure") does
  not negate, and a `scope_terminators` word ("but", "now") or a sentence end ends a cue's scope;
- a finding that is an absence ("not breathing": `absence_findings`) is not negated by the cue
  right before it;
- a finding is history after a `history_before` cue (or right after a `history_right_before`
  cue: "since my stroke") (not followed by a `recent_units` word: "in
  the past hour" is now) or before a `history_after` cue, or with a year in its scope;
- a third party's finding told in the past tense is history ("my gran died of a stroke", "my dad
  had a heart attack at 50": ConText's experiencer, `third_party_*` sets); told now it is current;
- it is hypothetical after a `hypothetical_before` cue (a `conditional_openers` cue only inside
  its own clause) or before a `hypothetical_after` cue, unless a `current_overrides` phrase says
  it is happening now;
- advice ("call 999", "take antibiotics") is read in its clause: a comma ends the clause when an
  `instruction_verbs` or `clause_subjects` word follows it ("don't panic, call 999") and otherwise joins list items
  that share the negation before them ("don't use ice, butter or toothpaste"). Besides the
  negation cues, `advice_negation_before` cues turn advice down ("avoid", "rather than"); a cue
  inside a condition (`answer_conditionals`) opened earlier in the clause negates the condition,
  not the advice ("if it doesn't improve, call 999"), and a `negation_releases` word after the cue turns it against the
  delay ("don't hesitate to call 999").

Every rule looks only at a bounded window around the mention, so one reading costs a constant
and reading every mention of a text stays linear in its length.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from clinical_rlhf.knowledge.language import Language, load_language

Situation = Literal["current", "negated", "history", "hypothetical"]
Tokenize = Callable[[str], tuple[str, ...]]
SENTENCE_BREAK = "|"
CLAUSE_BREAK = ","
NEGATION_AFTER_REACH = 5
"""Words after a finding in which a `negation_after` cue negates it ("stroke was ruled out")."""
HYPOTHETICAL_AFTER_REACH = 4
"""Words after a finding in which a `hypothetical_after` cue makes it generic ("stroke symptoms")."""
PSEUDO_AFTER_REACH = 3
"""A pseudo-negation may run this many words past the finding ("not sure if it is chest pain or not")."""
CLAUSE_REACH = 24
"""Words read back for the start of an advice's clause (where a condition may open: "if it gets
worse or you cannot keep fluids down, call 999"). Real clauses are shorter; the bound keeps each
reading constant-time on a text without breaks."""
EARLIEST_YEAR, LATEST_YEAR = 1930, 2035
_TOKEN = re.compile(r"([a-z0-9@$']+)|((?:[!?;\n|]|\.(?=\s|$))+)|[,:()]| - ")


def text_tokens(text: str, determiners: frozenset[str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Tokens of a text (normalised: `knowledge.text.normalize_text`) as the reader reads them, and each token's character offset.

    Apostrophes are dropped inside words ("don't" -> "dont"); a run of sentence marks is one
    `SENTENCE_BREAK`, a comma, colon, bracket or spaced dash one `CLAUSE_BREAK`."""
    tokens: list[str] = []
    starts: list[int] = []
    for match in _TOKEN.finditer(text.lower()):
        word, sentence_end = match.groups()
        if word is not None:
            if "'" in word:
                word = word.replace("'", "")
                if not word:
                    continue
            if word in determiners:
                continue
            tokens.append(word)
        else:
            tokens.append(SENTENCE_BREAK if sentence_end is not None else CLAUSE_BREAK)
        starts.append(match.start())
    return tuple(tokens), tuple(starts)


class CueWindow:
    """Cue phrases looked up inside a short window of tokens (a few words around a mention).

    Each phrase is filed under its first word, so a window costs one dictionary lookup per token.
    Naive equivalent of `find(tokens, low, high)`: every (i, i + len(p)) with low <= i and
    i + len(p) <= high and tokens[i:i + len(p)] == p, for every phrase p."""

    def __init__(self, phrases: Iterable[str], tokenize: Tokenize) -> None:
        by_first: dict[str, set[tuple[str, ...]]] = {}
        for phrase in phrases:
            tokens = tokenize(phrase)
            if tokens:
                by_first.setdefault(tokens[0], set()).add(tokens)
        self._by_first = {word: tuple(sorted(found, key=len, reverse=True)) for word, found in by_first.items()}
        self.phrases = frozenset(phrase for found in self._by_first.values() for phrase in found)
        self.vocabulary = {word for phrase in self.phrases for word in phrase}

    def find(self, tokens: Sequence[str], low: int, high: int) -> list[tuple[int, int]]:
        hits = []
        by_first = self._by_first
        for position in range(max(low, 0), min(high, len(tokens))):
            for phrase in by_first.get(tokens[position], ()):
                end = position + len(phrase)
                if end <= high and tuple(tokens[position:end]) == phrase:
                    hits.append((position, end))
        return hits

    def contains(self, tokens: Sequence[str], low: int, high: int) -> bool:
        return bool(self.find(tokens, low, high))


class ContextRules:
    """The reading rules over one set of cue data (see the module docstring)."""

    def __init__(self, tokenize: Tokenize | None = None, language: Language | None = None) -> None:
        language = language or load_language()
        self.determiners = language.words("determiners")
        tokenize = tokenize or self.phrase_tokens
        cues = {name: CueWindow(language.phrases(name), tokenize) for name in (
            "negation_before", "negation_after", "pseudo_negation", "history_before", "history_after",
            "hypothetical_before", "hypothetical_after", "conditional_openers", "current_overrides",
            "advice_negation_before", "resolution_after", "third_party_past", "third_party_had")}
        self.negation_before, self.negation_after = cues["negation_before"], cues["negation_after"]
        self.pseudo_negation = cues["pseudo_negation"]
        self.history_before, self.history_after = cues["history_before"], cues["history_after"]
        self.hypothetical_before, self.hypothetical_after = cues["hypothetical_before"], cues["hypothetical_after"]
        self.conditional_openers, self.current = cues["conditional_openers"], cues["current_overrides"]
        self.advice_negation = cues["advice_negation_before"]
        self._resolutions = cues["resolution_after"].phrases
        self.third_party_past, self.third_party_had = cues["third_party_past"], cues["third_party_had"]
        self.people = CueWindow((written for written, _ in language.mappings("third_party_people")), tokenize)
        self.third_party_reach = language.reach("third_party_past")
        self.age_at = language.words("age_at_cues")
        self._conditionals = frozenset(tokenize(p) for p in language.phrases("conditional_openers"))
        terminators = [tokenize(p) for p in language.phrases("scope_terminators")]
        self.terminators = frozenset(t[0] for t in terminators if len(t) == 1)
        # A terminator of several words ("and now") ends a scope at its first word, only as a whole.
        self._terminator_phrases: dict[str, tuple[tuple[str, ...], ...]] = {}
        for phrase in (t for t in terminators if len(t) > 1):
            self._terminator_phrases[phrase[0]] = (*self._terminator_phrases.get(phrase[0], ()), phrase)
        self.recent_units = language.words("recent_units")
        self.releases = frozenset(w.replace("'", "") for w in language.words("negation_releases"))
        self.advice_conditionals = CueWindow(language.words("answer_conditionals"), tokenize)
        self.instruction_verbs = language.words("instruction_verbs")
        self.clause_subjects = language.words("clause_subjects")
        self._clause_openers = self.clause_subjects | language.words("clause_predicates")
        self.clause_conjunctions = language.words("clause_conjunctions")
        self.absence_findings = language.words("absence_findings")
        self.history_right_before = language.words("history_right_before")
        self.history_right_reach = language.reach("history_right_before")
        self.negation_reach = language.reach("negation_before")
        self.history_reach = language.reach("history_before")
        self.hypothetical_reach = language.reach("hypothetical_before")
        self.vocabulary: set[str] = set().union(*(cue.vocabulary for cue in cues.values()), self.people.vocabulary)

    def phrase_tokens(self, phrase: str) -> tuple[str, ...]:
        """A cue phrase as tokens (what `text_tokens` makes of it, breaks left out)."""
        return tuple(t for t in text_tokens(phrase.lower(), self.determiners)[0]
                     if t not in (SENTENCE_BREAK, CLAUSE_BREAK))

    # -- scopes ------------------------------------------------------------------------------

    def ends_scope(self, tokens: Sequence[str], position: int) -> bool:
        """A scope terminator starts at tokens[position] ("but", "however", "and now")."""
        token = tokens[position]
        if token in self.terminators:
            return True
        phrases = self._terminator_phrases.get(token)
        return phrases is not None and any(tuple(tokens[position:position + len(phrase)]) == phrase
                                           for phrase in phrases)

    def scope_start(self, tokens: Sequence[str], low: int, start: int, commas: bool = False) -> int:
        """Past the last terminator before `start`, or the last place a new clause starts (a comma
        before a `clause_subjects` word, "and" before a new predicate); with `commas`, past any
        clause break."""
        for position in range(start - 1, low - 1, -1):
            if self.ends_scope(tokens, position):
                return position + 1
            token = tokens[position]
            if token == CLAUSE_BREAK and (commas or self._opens_clause(tokens, position + 1, self.clause_subjects)):
                return position + 1
            if token in self.clause_conjunctions and self._opens_clause(tokens, position + 1, self._clause_openers):
                return position + 1
        return low

    @staticmethod
    def _opens_clause(tokens: Sequence[str], position: int, openers: frozenset[str]) -> bool:
        return position < len(tokens) and tokens[position] in openers

    def scope_end(self, tokens: Sequence[str], end: int, high: int) -> int:
        for position in range(end, high):
            if self.ends_scope(tokens, position):
                return position
        return high

    def advice_clause_start(self, tokens: Sequence[str], first: int, start: int) -> int:
        """Where the clause of advice at `start` begins: after a terminator, or a comma followed
        by an instruction verb; a comma before anything else joins list items."""
        low = max(first, start - CLAUSE_REACH)
        for position in range(start - 1, low - 1, -1):
            if self.ends_scope(tokens, position):
                return position + 1
            if tokens[position] == CLAUSE_BREAK and position + 1 < len(tokens) and (
                    tokens[position + 1] in self.instruction_verbs or tokens[position + 1] in self.clause_subjects):
                return position + 1
        return low

    # -- findings ----------------------------------------------------------------------------

    def situation(self, tokens: Sequence[str], start: int, end: int, first: int, last: int,
                  says_now: bool | None = None) -> Situation:
        """What the finding at tokens[start:end] in the sentence tokens[first:last] describes.
        `says_now`: whether the sentence holds a `current_overrides` phrase, when the caller
        knows it from a search of the whole text (a long sentence is then not scanned per mention)."""
        if self.is_negated(tokens, start, end, first, last):
            return "negated"
        if self.is_history(tokens, start, end, first, last, says_now):
            return "history"
        if says_now if says_now is not None else self.current.contains(tokens, first, last):
            return "current"
        if self.is_hypothetical(tokens, start, end, first, last):
            return "hypothetical"
        return "current"

    def is_negated(self, tokens: Sequence[str], start: int, end: int, first: int, last: int,
                   within_clause: bool = False) -> bool:
        """A negation cue up to the reach before the finding (not inside a pseudo-negation, not
        past a terminator; with `within_clause`, not past a comma or colon either), or a
        post-negation cue a few words after it."""
        low = self.scope_start(tokens, max(first, start - self.negation_reach), start, commas=within_clause)
        if self._negated_from(tokens, self.negation_before.find(tokens, low, start), low, start, end, last):
            return True
        high = self.scope_end(tokens, end, min(last, end + NEGATION_AFTER_REACH))
        return self._negated_after(tokens, end, high)

    def _negated_after(self, tokens: Sequence[str], end: int, high: int) -> bool:
        """A post-negation cue in tokens[end:high]; a `resolution_after` cue ("has gone") only where
        it ends its clause ("the pain has gone"), not as a linking verb ("her hand has gone floppy")."""
        for cue_start, cue_end in self.negation_after.find(tokens, end, high):
            if tuple(tokens[cue_start:cue_end]) not in self._resolutions or cue_end >= len(tokens) \
                    or tokens[cue_end] in (SENTENCE_BREAK, CLAUSE_BREAK) or self.ends_scope(tokens, cue_end):
                return True
        return False

    def _negated_from(self, tokens: Sequence[str], cues: list[tuple[int, int]], low: int, start: int,
                      end: int, last: int) -> bool:
        if not cues:
            return False
        pseudo = {position for s, e in self.pseudo_negation.find(tokens, low, min(last, end + PSEUDO_AFTER_REACH))
                  for position in range(s, e)}
        absence = tokens[start] in self.absence_findings
        return any(cue_end <= start and cue_start not in pseudo and not (absence and cue_end == start)
                   for cue_start, cue_end in cues)

    def is_history(self, tokens: Sequence[str], start: int, end: int, first: int, last: int,
                   says_now: bool | None = None) -> bool:
        low = self.scope_start(tokens, max(first, start - self.history_reach), start)
        high = self.scope_end(tokens, end, min(last, end + self.history_reach))
        for _, cue_end in self.history_before.find(tokens, low, start):
            # "in the past hour" is now, "in the past" is history.
            if cue_end <= start and (cue_end >= len(tokens) or tokens[cue_end] not in self.recent_units):
                return True
        if self.history_after.contains(tokens, end, high):
            return True
        if any(token in self.history_right_before for token in tokens[max(low, start - self.history_right_reach):start]):
            return True
        if any(token.isdigit() and len(token) == 4 and EARLIEST_YEAR <= int(token) <= LATEST_YEAR
               for token in tokens[low:high]):
            return True
        return self.is_third_party_past(tokens, start, end, first, last, says_now)

    def is_third_party_past(self, tokens: Sequence[str], start: int, end: int, first: int, last: int,
                            says_now: bool | None = None) -> bool:
        """ConText's experiencer: a third party (`third_party_people`) named before the mention in
        its clause, then past-tense wording before the mention (`told_as_past`): "my gran died of a
        stroke", "my dad had a heart attack at 50"."""
        low = self.scope_start(tokens, max(first, start - self.third_party_reach), start, commas=True)
        people = self.people.find(tokens, low, start)
        if not people:
            return False
        clause_end = self.scope_end(tokens, end, min(last, end + self.third_party_reach))
        return self.told_as_past(tokens, people[0][1], start, clause_end, first, last, says_now)

    def told_as_past(self, tokens: Sequence[str], person_end: int, cue_stop: int, clause_end: int,
                     first: int, last: int, says_now: bool | None = None) -> bool:
        """Past-tense wording in [person_end, cue_stop): always history after `third_party_past` ("my
        gran died of a stroke"), after `third_party_had` only with the age it happened at before
        `clause_end` ("my dad had a heart attack at 50"; "my son had a fit" may be minutes old). A
        sentence that says it is happening now (`says_now`) stays current."""
        if says_now if says_now is not None else self.current.contains(tokens, first, last):
            return False
        if self.third_party_past.contains(tokens, person_end, cue_stop):
            return True
        return self.third_party_had.contains(tokens, person_end, cue_stop) and \
            self._states_age_at(tokens, person_end, clause_end)

    def _states_age_at(self, tokens: Sequence[str], start: int, stop: int) -> bool:
        """An age an event happened at between start and stop: "at 50", "aged 62", "in his 40s"
        (the determiner dropped: "in 40s")."""
        for position in range(start, stop - 1):
            token, following = tokens[position], tokens[position + 1]
            if token in self.age_at and following.isdigit():
                return True
            if token == "in" and following[:-1].isdigit() and following.endswith("s"):
                return True
        return False

    def is_hypothetical(self, tokens: Sequence[str], start: int, end: int, first: int, last: int) -> bool:
        low = max(first, start - self.hypothetical_reach)
        comma_low = self.scope_start(tokens, low, start, commas=True)
        for cue_start, cue_end in self.hypothetical_before.find(tokens, low, start):
            if cue_end > start:
                continue
            if tuple(tokens[cue_start:cue_end]) in self._conditionals and cue_start < comma_low:
                continue
            return True
        return self.hypothetical_after.contains(tokens, end, min(last, end + HYPOTHETICAL_AFTER_REACH))

    def in_condition(self, tokens: Sequence[str], start: int, first: int) -> bool:
        """A conditional opener ("if", "in case") earlier in the clause of tokens[start]."""
        low = self.scope_start(tokens, first, start, commas=True)
        return any(cue_end <= start for _, cue_end in self.conditional_openers.find(tokens, low, start))

    # -- advice ------------------------------------------------------------------------------

    def is_advice_negated(self, tokens: Sequence[str], start: int, end: int, first: int, last: int) -> bool:
        """Advice at tokens[start:end] turned down in its clause: a negation or advice-negation cue
        within the reach before it, not inside a condition opened before the cue, not followed by
        a release; or a post-negation cue after it in its clause."""
        clause = self.advice_clause_start(tokens, first, start)
        low = max(clause, start - self.negation_reach)
        cues = self.negation_before.find(tokens, low, start) + self.advice_negation.find(tokens, low, start)
        if cues:
            pseudo = {p for s, e in self.pseudo_negation.find(tokens, low, min(last, end + PSEUDO_AFTER_REACH))
                      for p in range(s, e)}
            cue_start, cue_end = max((cue for cue in cues if cue[1] <= start and cue[0] not in pseudo),
                                     default=(None, None))
            if cue_start is not None:
                released = any(token in self.releases for token in tokens[cue_end:start])
                conditional = self.advice_conditionals.contains(tokens, clause, cue_start)
                if not released and not conditional:
                    return True
        high = end
        while high < min(last, end + NEGATION_AFTER_REACH) and not self.ends_scope(tokens, high) \
                and tokens[high] != CLAUSE_BREAK:
            high += 1
        return self._negated_after(tokens, end, high)


class TokenReading:
    """A text as the reader's tokens, with each token's character offset and its sentence, so a
    caller that finds phrases by character offset (the question reader, the reward) can ask the
    reader about them."""

    __slots__ = ("rules", "tokens", "starts", "_breaks", "_now")

    def __init__(self, text: str, rules: ContextRules) -> None:
        self.rules = rules
        self.tokens, self.starts = text_tokens(text, rules.determiners)
        self._breaks = [i for i, token in enumerate(self.tokens) if token == SENTENCE_BREAK]
        self._now: list[int] | None = None

    def says_now(self, first: int, last: int) -> bool:
        """A `current_overrides` phrase inside tokens[first:last], from one search of the whole text
        (so a long sentence is not scanned once per mention)."""
        if self._now is None:
            self._now = sorted(start for start, _ in self.rules.current.find(self.tokens, 0, len(self.tokens)))
        # a phrase holds no sentence break, so one starting inside the sentence ends inside it
        index = bisect_left(self._now, first)
        return index < len(self._now) and self._now[index] < last

    def token_at(self, offset: int) -> int:
        """The first token starting at or after character `offset`."""
        return bisect_left(self.starts, offset)

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        breaks = self._breaks
        before = bisect_left(breaks, start)
        after = bisect_left(breaks, max(end, start + 1) - 1)
        return (breaks[before - 1] + 1 if before else 0), (breaks[after] if after < len(breaks) else len(self.tokens))

    def span(self, first_char: int, last_char: int) -> tuple[int, int]:
        """Tokens [start, end) covering the characters [first_char, last_char)."""
        start = self.token_at(first_char)
        return start, max(start + 1, self.token_at(last_char))

    def is_negated(self, first_char: int, last_char: int) -> bool:
        start, end = self.span(first_char, last_char)
        return self.rules.is_negated(self.tokens, start, end, *self.sentence(start, end))

    def is_current(self, first_char: int, last_char: int) -> bool:
        """Neither history nor hypothetical (a `current_overrides` phrase overrides the latter)."""
        start, end = self.span(first_char, last_char)
        first, last = self.sentence(start, end)
        return self.rules.situation(self.tokens, start, end, first, last,
                                    says_now=self.says_now(first, last)) in ("current", "negated")

    def is_advice_negated(self, first_char: int, last_char: int) -> bool:
        start, end = self.span(first_char, last_char)
        return self.rules.is_advice_negated(self.tokens, start, end, *self.sentence(start, end))


@functools.lru_cache(maxsize=1)
def shared_rules() -> ContextRules:
    """The reader over the shipped language file, built once (the guard builds its own with its
    tokeniser, which also reads patient shorthand in the cue phrases)."""
    return ContextRules()
