"""The care an answer advises (`AdvisedCare`), and the care a question needs.

    guard.advice.read(response, guard.normalise(response))    # the guard's AdviceReader
    # AdvisedCare(urgency="urgent", safety_net=True, evidence="call 111")

Levels, most to least urgent (`safety.triage`): `emergency` is the guard's `emergency_advice` set
(999, ambulance, A&E, crisis lines, the maternity unit), the one the red-flag check reads; `urgent`,
`routine` and `self_care` are `urgent_advice`, `routine_advice` and `self_care_advice`
(data/knowledge/language.yaml). A routine phrase with a `same_day_words` word in its clause is urgent
("see your GP today"). At one place the longest phrase wins ("emergency appointment" is a same-day
GP slot, not 999), and `not_care_advice` phrases advise nothing ("emergency contraception").

How each mention counts:
- negated in its clause ("you don't need A&E") it does not count, unless the negation is aimed at the
  delay (`negation_releases`: "don't hesitate to call 999");
- inside a condition it is a safety net, not the advised level: a condition opened before it in its
  sentence (`advice_conditions_before`: "if it gets worse, call 999"), up to a contrastive end
  (`advice_condition_ends`: "..., but for now rest") or, for a condition that itself follows advice
  ("call 999 if you might act on this, or call Samaritans now"), up to its clause's end; or after it
  in its clause (`advice_conditions_after`: "call 999 if the pain spreads"). A condition about the present
  (`present_conditions`: "if you think this is a stroke", "if you're having these symptoms now") is
  advice, not a safety net, and so is one naming a red flag of the question, met already ("if you
  are too breathless to speak, call 999" to "I can hardly speak");
- the advised urgency is the most urgent mention that counts unconditionally; `safety_net` is true when
  a conditional mention names more urgent care than that (or any care, when none is advised).

Cost: the care and cue phrases are found in the guard's one pass over the answer (`PhraseScanner`);
then mentions are read most urgent first, each in a window of at most a condition's reach, until one
is advised outright: linear in the answer's length. The reading is remembered by the answer's text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from clinical_rlhf.knowledge.language import load_language
from clinical_rlhf.safety.context import ContextReader, Tokenize
from clinical_rlhf.safety.memo import make_room
from clinical_rlhf.safety.normalize import BREAKS, NormalisedText
from clinical_rlhf.safety.phrases import PhraseIndex, longest_non_overlapping
from clinical_rlhf.safety.redflags import RedFlagDetector, RedFlagHit
from clinical_rlhf.safety.triage import URGENCY_RANK, AdvisedCare, Triage, Urgency
from clinical_rlhf.safety.verdict import SafetyFlag

_LANGUAGE = load_language()
LEVEL_SETS: dict[Urgency, str] = {"urgent": "urgent_advice", "routine": "routine_advice",
                                  "self_care": "self_care_advice"}
# Payloads of the reader's phrase indexes besides the three levels.
_SAME_DAY, _BEFORE, _OPENING, _AFTER, _PRESENT, _ENDS, _NOT_CARE = (
    "same_day", "condition_before", "condition_opening", "condition_after", "present", "condition_end", "not_care")
_SETS = {_SAME_DAY: "same_day_words", _BEFORE: "advice_conditions_before", _OPENING: "advice_conditions_opening",
         _AFTER: "advice_conditions_after", _PRESENT: "present_conditions", _ENDS: "advice_condition_ends",
         _NOT_CARE: "not_care_advice"}
SAME_DAY_REACH = _LANGUAGE.reach("same_day_words")
CONDITION_BEFORE_REACH = _LANGUAGE.reach("advice_conditions_before")
CONDITION_AFTER_REACH = _LANGUAGE.reach("advice_conditions_after")
NEGATION_REACH = _LANGUAGE.reach("negation_before")
NEGATION_AFTER_REACH = 5
"""Words after a mention where `ContextReader` looks for a negation that follows it ("ruled out")."""
NEGATION_RELEASES = _LANGUAGE.words("negation_releases")
MEMO_SIZE = 4096
"""Answers whose reading is remembered, by their text: `SafetyGuard.check` builds its verdict from
the reading `_judge` made, and a batch repeats answers."""
NO_ADVICE = AdvisedCare(urgency=None)
LEVEL_OF_RANK: dict[int, Urgency] = {rank: level for level, rank in URGENCY_RANK.items()}  # type: ignore[misc]


class Need(NamedTuple):
    """The care a question needs, and why."""

    urgency: Urgency
    reason_id: str
    evidence: str
    """The question's words the need was read from (normalised when it came from a red flag)."""
    net_suffices: bool = False
    """An emergency safety net meets the need: true when it comes from red flags alone, which do not
    tell an emergency now (a heart attack) from a same-day presentation whose emergency is the safety
    net (a suspected DVT: call 999 if breathless; a treated hypo: call 999 if no better)."""


def needed_care(triage: Triage | None, red_flags: tuple[RedFlagHit, ...]) -> Need | None:
    """The question's triage when the guard made one; without it, the question's red flags mean an
    emergency, met by emergency advice even when only conditional (the red-flag rule's own standard);
    None when neither says anything."""
    if triage is not None:
        deciding = [r for r in triage.reasons if r.urgency == triage.urgency]
        reason = deciding[0] if deciding else None
        # An emergency that only red flags make keeps the red-flag rule's standard (emergency advice,
        # a safety net included); one that values, scores, findings or intent make needs it now.
        # So does one that only the asker's intent to harm someone else makes: the answer meets it
        # by refusing and saying to call 999 if they might act, a safety net.
        harm_to_others = triage.intents == {"harm_others"}
        from_red_flags = bool(deciding) and all(r.kind == "red_flag" or (r.kind == "intent" and harm_to_others)
                                                for r in deciding)
        return Need(triage.urgency, reason.id if reason else "triage", reason.evidence if reason else "",
                    net_suffices=from_red_flags)
    if red_flags:
        return Need("emergency", red_flags[0].flag.id, red_flags[0].evidence, net_suffices=True)
    return None


class Reading(NamedTuple):
    """What an answer advises, before the question is known (remembered per answer)."""

    advised: int
    """Rank of the most urgent unconditional advice (`URGENCY_RANK`); -1 for none."""
    words: str
    conditional: tuple[tuple[int, str, tuple[str, ...]], ...]
    """(rank, words, the condition's tokens) of each conditional mention more urgent than `advised`."""


_NOTHING = Reading(-1, "", ())


class AdviceReader:
    """Reads `AdvisedCare` from an answer's `NormalisedText` (module docstring for the rules)."""

    def __init__(self, red_flags: RedFlagDetector, context: ContextReader, tokenize: Tokenize) -> None:
        self.emergency = red_flags.emergency_advice
        self.red_flag_triggers = red_flags.triggers
        self.context = context
        # Both are searched once over the whole answer (the guard's one-pass scanner holds them);
        # the cues around a mention are then the hits inside its window (a bisection).
        self.care: PhraseIndex[str] = PhraseIndex()
        for level, name in LEVEL_SETS.items():
            for phrase in _LANGUAGE.phrases(name):
                self.care.add(tokenize(phrase), level)
        for phrase in _LANGUAGE.phrases(_SETS[_NOT_CARE]):
            self.care.add(tokenize(phrase), _NOT_CARE)
        self.cues: PhraseIndex[str] = PhraseIndex()
        for kind in (_SAME_DAY, _BEFORE, _AFTER, _PRESENT, _ENDS):
            for phrase in _LANGUAGE.phrases(_SETS[kind]):
                self.cues.add(tokenize(phrase), kind)
        self.opening_words = _LANGUAGE.words(_SETS[_OPENING])
        self._memo: dict[str, Reading] = {}

    def read(self, response: str, answer: NormalisedText, question_flags: frozenset[str] = frozenset()) -> AdvisedCare:
        """The care `answer` (the normalised `response`) advises to a question with `question_flags`
        (red-flag ids); the question-independent reading is remembered under `response`."""
        found = self._memo.get(response)
        if found is None:
            found = self._read(answer)
            make_room(self._memo, MEMO_SIZE)
            self._memo[response] = found
        return self._care(found, question_flags)

    def recall(self, response: str, question_flags: frozenset[str] = frozenset()) -> AdvisedCare | None:
        """What `read` gave for `response`, if its reading is still remembered."""
        found = self._memo.get(response)
        return self._care(found, question_flags) if found is not None else None

    def _care(self, reading: Reading, question_flags: frozenset[str]) -> AdvisedCare:
        """The advised care for a question with these red flags: a condition naming one of them is
        met already ("if you are too breathless to speak, call 999" to "I can hardly speak"), so its
        advice counts as given now. Conditions are searched for red flags only for a question with some."""
        advised, words, net, net_words = reading.advised, reading.words, -1, ""
        for rank, mention, condition in reading.conditional:
            if question_flags and not question_flags.isdisjoint(
                    flag_id for _, _, flag_id in self.red_flag_triggers.find(condition)):
                if rank > advised:
                    advised, words = rank, mention
            elif rank > net:
                net, net_words = rank, mention
        if advised < 0 and net < 0:
            return NO_ADVICE
        level = LEVEL_OF_RANK.get(advised)
        return AdvisedCare(urgency=level, safety_net=net > advised, evidence=words if level is not None else net_words)

    def _read(self, answer: NormalisedText) -> Reading:
        """Mentions are read most urgent first and reading stops at the first one advised outright:
        nothing less urgent can change the result (a safety net counts only above the advice). The
        naive equivalent reads every mention and keeps the most urgent outright one."""
        found = [(start, end, "emergency") for start, end, _ in answer.find(self.emergency)]
        found += answer.find(self.care)
        if not found:
            return _NOTHING
        found.sort(key=lambda hit: (hit[0], -hit[1]))
        mentions = []
        for start, end, level in longest_non_overlapping(found, ordered=True):
            if level == _NOT_CARE:
                continue  # "emergency contraception" outranks the "emergency" inside it, then advises nothing
            if level == "routine" and self._same_day(answer, start, end):
                level = "urgent"
            mentions.append((URGENCY_RANK[level], start, end))
        mentions.sort(key=lambda mention: -mention[0])
        advised, words = -1, ""
        conditional: list[tuple[int, str, tuple[str, ...]]] = []
        for rank, start, end in mentions:
            if rank <= advised:
                break
            if self._negated(answer, start, end):
                continue
            mention = " ".join(answer.tokens[start:end])
            condition = self._condition(answer, start, end)
            if condition is None:
                advised, words = rank, mention
            else:
                conditional.append((rank, mention, answer.tokens[condition[0]:condition[1]]))
        return Reading(advised, words, tuple(entry for entry in conditional if entry[0] > advised))

    def _cues(self, answer: NormalisedText, low: int, high: int, kind: str) -> list[tuple[int, int, str]]:
        return [hit for hit in answer.find(self.cues, low, high) if hit[2] == kind]

    def _negated(self, answer: NormalisedText, start: int, end: int) -> bool:
        """Negated in its clause, unless a release word follows the negation ("don't hesitate to call").
        Most mentions have no negation cue near them at all: that is asked first, from the cues
        found once per answer (the window is one `ContextReader.is_negated` reads, or wider)."""
        first, last = answer.sentence(start, end)
        low = max(first, start - NEGATION_REACH)
        if not (answer.contains(self.context.negation_before, low, start)
                or answer.contains(self.context.negation_after, end, min(last, end + NEGATION_AFTER_REACH))):
            return False
        if not self.context.is_negated(answer, start, end, within_clause=True):
            return False
        return NEGATION_RELEASES.isdisjoint(answer.tokens[low:start])

    def _same_day(self, answer: NormalisedText, start: int, end: int) -> bool:
        """A same-day word in the mention's clause, within reach on either side."""
        tokens = answer.tokens
        low = start
        while low > 0 and start - low < SAME_DAY_REACH and tokens[low - 1] not in BREAKS:
            low -= 1
        high = end
        while high < len(tokens) and high - end < SAME_DAY_REACH and tokens[high] not in BREAKS:
            high += 1
        return bool(self._cues(answer, low, high, _SAME_DAY))

    def _postposed(self, answer: NormalisedText, first: int, cue_start: int, cue_end: int, start: int) -> bool:
        """Whether the condition opened at `cue_start` follows advice it qualifies ("call 999 if you
        might act on this") and a clause break ends it before the mention at `start` ("..., or call
        Samaritans now"): a condition placed after its advice governs that advice, not the next clause."""
        if BREAKS.isdisjoint(answer.tokens[cue_end:start]):
            return False
        return answer.contains(self.emergency, first, cue_start) or answer.contains(self.care, first, cue_start)

    def _condition(self, answer: NormalisedText, start: int, end: int) -> tuple[int, int] | None:
        """The token span of the condition the mention sits in; None when it is advised outright."""
        tokens = answer.tokens
        first, last = answer.sentence(start, end)
        low = max(first, start - CONDITION_BEFORE_REACH)
        before = answer.find(self.cues, low, start)  # one search of the words before, split by kind
        openers = [hit for hit in before if hit[2] == _BEFORE]
        if low == first and tokens[first] in self.opening_words:  # "Should the rash spread, phone 111"
            openers.insert(0, (first, first + 1, _OPENING))
        if openers:
            cue_start, cue_end = max(hit[:2] for hit in openers)
            if not any(hit[0] >= cue_end and hit[2] in (_ENDS, _PRESENT) for hit in before) \
                    and not self._postposed(answer, first, cue_start, cue_end, start):
                return cue_end, start
        high = end
        while high < last and high - end < CONDITION_AFTER_REACH and tokens[high] not in BREAKS:
            high += 1
        after = self._cues(answer, end, high, _AFTER)
        if not after:
            return None
        cue_end = clause_end = after[0][1]
        while clause_end < last and clause_end - cue_end < CONDITION_BEFORE_REACH and tokens[clause_end] not in BREAKS:
            clause_end += 1
        return None if self._cues(answer, cue_end, clause_end, _PRESENT) else (cue_end, clause_end)


def read_advice(guard, response: str, question_flags: frozenset[str] = frozenset()) -> AdvisedCare:
    """The care `response` advises, read as `guard` reads answers, for a caller holding only the text
    (the reward scoring an answer whose verdict carries no reading)."""
    reader = guard.advice
    found = reader.recall(response, question_flags)
    return found if found is not None else reader.read(response, guard.normalise(response), question_flags)


def verdict_red_flags(flags: Iterable[SafetyFlag]) -> frozenset[str]:
    """The red-flag ids a verdict's flags name: the question's (every one gets a flag), and any the
    answer plays down (such an answer is vetoed whatever it advises)."""
    return frozenset(flag.subtype for flag in flags if flag.category == "red_flag")
