"""Amounts, strengths and frequencies in an answer, turned into a dose and a daily total and
compared with the knowledge base's maxima.

    "two 500 mg tablets every 4 hours"  -> 1000 mg per dose x 6 per day = 6000 mg/day
    "1 g q6h"                            -> 1000 mg x 4 = 4000 mg/day
    "methotrexate 10 mg daily"          -> 70 mg/week against a 25 mg/week maximum
    "15 mg/kg every 6 hours"            -> 60 mg/kg/day against the children's maximum

An interval range ("every 4 to 6 hours") counts at its longer interval, the reading of the
labels that use it. Amounts called harmful ("8 g is an overdose") are not advice and are skipped;
amounts stated as limits ("no more than 8 g a day") are checked, since a wrong limit harms too.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import NamedTuple

from clinical_rlhf.knowledge import Drug, normalise_term
from clinical_rlhf.safety.lexicon import NUMBER_WORDS

_NUMBER = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+"
_COUNT = r"\d+|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_UNIT = r"mg|milligrams?|mcg|micrograms?|ug|g|gm|grams?|gr"
_FORM = r"tablets?|tabs?|capsules?|caps?|pills?|caplets?|softgels?|gelcaps?|lozenges?|sachets?|doses?"
_PER_KG = r"(?:\s*/\s*kg|\s+per\s+kg|\s+per\s+kilo(?:gram)?)"

# An amount with its unit; a count before it ("two 500 mg tablets", "2 x 500 mg", "2 tablets of
# 500 mg") and a multiplier after it ("500 mg x 2") are read from the few characters around it,
# which keeps the scan of the whole text to one simple pattern.
# Starts with a digit so the regex engine can skip to digits quickly; the "not inside a word"
# test on the character before is done in Python (`_Amount.read`).
_AMOUNT = re.compile(rf"(?P<first>\d[\d,]*(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(?P<second>{_NUMBER}))?\s*"
                     rf"(?P<unit>{_UNIT})\b(?P<kg>{_PER_KG})?")
_INSIDE_WORD = frozenset("abcdefghijklmnopqrstuvwyz0123456789_.,")  # "x" may precede: "2x500mg"
_AFTER = re.compile(rf"\s*\)?\s*(?P<form>{_FORM})?\s*(?:(?:x|×|\*)\s*(?P<times>\d+))?")
_FORM_WORD = re.compile(rf"\b(?:{_FORM})\b")
# The same words without the leading \b, whose start is tested in Python: a pattern that starts
# with a word boundary cannot skip ahead by its first letters, and costs twice as much.
_FORM_WORD_END = re.compile(rf"(?:{_FORM})\b")
_FORMS = frozenset(re.sub(r"[?()]", "", "tablet tablets tab tabs capsule capsules cap caps pill pills caplet caplets "
                                        "softgel softgels gelcap gelcaps lozenge lozenges sachet sachets dose "
                                        "doses").split())
_FORMS_OR_OF = _FORMS | {"of"}
_FORM_CUES = ("tab", "cap", "pill", "dose", "sachet", "lozenge", "softgel", "gelcap")
_LOOKBACK = 40
_FREQUENCY_REACH = 60
_TO_MG = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gm": 1000.0, "gram": 1000.0,
          "grams": 1000.0, "gr": 1000.0, "mcg": 0.001, "microgram": 0.001, "micrograms": 0.001, "ug": 0.001}

_TIMES = r"(?P<n>\d+|once|twice|thrice|one|two|three|four|five|six|seven|eight|nine|ten|twelve)"
_FREQUENCY = re.compile(
    # only at word starts: the look-arounds prune most positions before the alternatives are tried
    r"(?<![a-z0-9.])(?=[a-z0-9])(?:"
    r"every\s+(?P<every_lo>\d+(?:\.\d+)?)(?:\s*(?:-|–|to|or)\s*(?P<every_hi>\d+(?:\.\d+)?))?"
    r"\s*(?P<every_unit>hours?|hrs?|h|minutes?|mins?|days?)\b"
    r"|\bq\s?(?P<q_lo>\d+)(?:\s*-\s*(?P<q_hi>\d+))?\s?h\b"
    r"|\b(?P<every_other>every other day|alternate days)\b"
    r"|\b(?P<hourly>hourly|every hour)\b"
    rf"|\b{_TIMES}(?:\s+times?)?\s+(?:a|per|each|every)\s+(?P<times_unit>day|week|24 hours)\b"
    rf"|\b{_TIMES.replace('<n>', '<n2>')}(?:\s+times?)?\s+(?:daily|weekly|in 24 hours|in a day)\b"
    r"|\b(?P<bid>bid|b\.i\.d\.?|bd|b\.d\.)(?![a-z])|\b(?P<tid>tid|t\.i\.d\.?|tds|t\.d\.s\.?)(?![a-z])"
    r"|\b(?P<qid>qid|q\.i\.d\.?|qds|q\.d\.s\.?)(?![a-z])"
    r"|\b(?P<weekly>weekly|a week|per week|each week|every week|once a week)\b"
    r"|\b(?P<daily>daily|a day|per day|each day|every day|in 24 hours|per 24 hours|every 24 hours|a night"
    r"|at night|at bedtime|nightly|every morning|each morning|od|qd|in one day|in a day|over 24 hours)\b"
    r")"
)
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_SENTENCE_MARK = re.compile(r"[.!?;\n]")


class DoseStatement(NamedTuple):
    """One amount the text gives for a drug. A named tuple rather than a frozen dataclass: the
    guard builds a few per answer, and a tuple is built several times faster."""

    drug: Drug
    per_dose_mg: float | None
    """Amount per administration, mg (None for per-kg amounts)."""
    per_kg_mg: float | None
    """Amount per kg of body weight per administration, mg/kg (per-kg statements only)."""
    doses_per_day: float | None
    """From the frequency; None when the answer states none (a single dose)."""
    evidence: str
    span: tuple[int, int]
    clause: tuple[int, int]
    """Character range of the text around the amount whose words tell how it is meant."""

    @property
    def daily_mg(self) -> float | None:
        if self.per_dose_mg is None:
            return None
        return self.per_dose_mg * (self.doses_per_day if self.doses_per_day is not None else 1.0)


def _is_count(word: str) -> bool:
    return word in NUMBER_WORDS or (word.isdigit() and len(word) <= 3)


def _count_before(text: str, start: int) -> tuple[float, int] | None:
    """A count written before an amount: "two 500 mg", "2 x 500 mg", "2x500mg", "2 tablets of
    500 mg", "2 tablets of paracetamol 500 mg" -> (count, where it starts)."""
    window_start = max(0, start - _LOOKBACK)
    window = text[window_start:start]
    if "×" in window or "*" in window:
        window = window.replace("×", " x ").replace("*", " x ")
    words = window.split()
    if not words:
        return None
    if words[-1].endswith("x") and _is_count(words[-1][:-1]):
        words[-1:] = [words[-1][:-1], "x"]
    index = len(words) - 1
    if words[index] in ("x", "of"):
        index -= 1
    if index >= 1 and not _is_count(words[index]) and words[index] not in _FORMS \
            and words[index - 1] in _FORMS_OR_OF:
        index -= 1  # "tablets of paracetamol 500 mg": skip the drug name
    if index >= 0 and words[index] == "of":
        index -= 1
    if index >= 0 and words[index] in _FORMS:
        index -= 1
    if index < 0 or not _is_count(words[index]):
        return None
    return _number(words[index]), text.rfind(words[index], window_start, start)


def _number(text: str) -> float:
    if text in NUMBER_WORDS:
        return float(NUMBER_WORDS[text])
    return float(text.replace(",", ""))


def doses_per_day(match: re.Match[str]) -> float:
    """Administrations per 24 hours for one frequency match."""
    group = match.group
    every = group("every_lo")
    if every:
        interval = float(group("every_hi") or every)
        unit = group("every_unit")
        if interval <= 0:
            return 1.0
        if unit.startswith("min"):
            return 24 * 60 / interval
        if unit.startswith("day"):
            return 1 / interval
        return 24 / interval
    q_lo = group("q_lo")
    if q_lo:
        return 24 / max(float(group("q_hi") or q_lo), 1.0)
    if group("every_other"):
        return 0.5
    if group("hourly"):
        return 24.0
    count = group("n") or group("n2")
    if count:
        times = _number(count)  # NUMBER_WORDS reads once, twice and thrice as 1, 2, 3
        per_week = (group("times_unit") == "week") or ("weekly" in match.group(0))
        return times / 7 if per_week else times
    if group("bid"):
        return 2.0
    if group("tid"):
        return 3.0
    if group("qid"):
        return 4.0
    if group("weekly"):
        return 1 / 7
    return 1.0


def _form_words(text: str) -> list[re.Match[str]]:
    """`_FORM_WORD.finditer(text)`, faster: the word-start test is done on the character before."""
    return [match for match in _FORM_WORD_END.finditer(text)
            if not match.start() or not _is_word_char(text[match.start() - 1])]


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def sentence_ends(text: str) -> list[int]:
    """`[m.end() for m in _SENTENCE_END.finditer(text)]`, faster: the look-ahead of every mark
    is tested in Python on the one character after it."""
    size = len(text)
    return [match.end() for match in _SENTENCE_MARK.finditer(text)
            if match.end() == size or text[match.end()].isspace() or match.group() == "\n"]


def find_doses(text: str, drugs: list[Drug], fallback: Drug | None) -> list[DoseStatement]:
    """Dose statements in `text` (normalised answer), each attributed to the nearest named drug
    in its sentence, else the last drug named before it, else `fallback` (the question's drug)."""
    amounts = [_Amount.read(text, match) for match in _AMOUNT.finditer(text)
               if not match.start() or text[match.start() - 1] not in _INSIDE_WORD]
    if amounts and any(form in text for form in _FORM_CUES):
        taken = [(a.start, a.end) for a in amounts]
        counted = (_Amount.count_only(text, m) for m in _form_words(text)
                   if not any(start <= m.start() < end for start, end in taken))
        amounts += [amount for amount in counted if amount is not None]
        amounts.sort(key=lambda amount: amount.start)
    if not amounts:
        return []
    positions = _drug_positions(text, drugs)
    statements: list[DoseStatement] = []
    strengths: dict[str, float] = {}
    # Each amount's sentence by bisection over the sentence ends (found once): sentences run from
    # one end to the next; a sentence's amounts are neighbours in `amounts` (sorted by start).
    ends = sentence_ends(text)
    size = len(text)
    index = 0
    while index < len(amounts):
        sentence = bisect_right(ends, amounts[index].start)
        sentence_start = ends[sentence - 1] if sentence else 0
        sentence_end = ends[sentence] if sentence < len(ends) else size
        last = index
        while last + 1 < len(amounts) and amounts[last + 1].start < sentence_end:
            last += 1
        for position in range(index, last + 1):
            amount = amounts[position]
            drug = _attribute(amount.start, sentence_start, sentence_end, positions) or fallback
            if drug is None:
                continue
            clause_start = amounts[position - 1].end if position > index else sentence_start
            clause_end = amounts[position + 1].start if position < last else sentence_end
            statement = amount.statement(text, drug, strengths, (clause_start, clause_end))
            if statement is not None:
                statements.append(statement)
        index = last + 1
    return statements


class _Amount(NamedTuple):
    start: int
    end: int
    mg: float | None
    """Total mg for this administration (count x strength x multiplier); None for a bare count."""
    count: float
    strength_mg: float | None
    per_kg: bool
    form: bool
    """Followed by a dosage form ("500 mg tablets"): a strength the answer may count in later."""

    @classmethod
    def read(cls, text: str, match: re.Match[str]) -> _Amount:
        first, second, unit, per_kg = match.group("first", "second", "unit", "kg")
        ranged = second is not None  # "500-1000 mg" counts at its upper end
        strength = _number(second if ranged else first) * _TO_MG[unit]
        start, end, count = match.start(), match.end(), 1.0
        if not ranged:
            found = _count_before(text, start)
            if found is not None:
                count, start = found
        after = _AFTER.match(text, end)
        form, times = after.group("form", "times")
        if times:
            count *= float(times)
        if after.end() > end and not after.group(0).isspace():
            end = after.end()
        return cls(start, end, count * strength, count, strength, bool(per_kg), bool(form))

    @classmethod
    def count_only(cls, text: str, form: re.Match[str]) -> _Amount | None:
        """"take 2 tablets": a count of a strength named earlier."""
        words = text[max(0, form.start() - 16):form.start()].split()
        if not words or not _is_count(words[-1]):
            return None
        return cls(form.start() - len(text[:form.start()]) + text[:form.start()].rfind(words[-1]), form.end(),
                   None, _number(words[-1]), None, False, False)

    def statement(self, text: str, drug: Drug, strengths: dict[str, float],
                  clause: tuple[int, int]) -> DoseStatement | None:
        if self.mg is None:
            strength = strengths.get(drug.name)
            if strength is None:
                return None
            amount = self.count * strength
        else:
            amount = self.mg
            if self.count == 1 and not self.per_kg and self.strength_mg is not None:
                strengths[drug.name] = self.strength_mg  # "paracetamol 500 mg ... take two tablets"
        # The frequency that belongs to an amount follows it closely ("1 g every 6 hours"), or
        # precedes it ("every 6 hours, take 1 g"); short windows keep the search cheap.
        frequency = (_FREQUENCY.search(text, self.end, min(clause[1], self.end + _FREQUENCY_REACH))
                     or _FREQUENCY.search(text, max(clause[0], self.start - _FREQUENCY_REACH), self.start))
        per_day = doses_per_day(frequency) if frequency else None
        return DoseStatement(drug=drug, per_dose_mg=None if self.per_kg else amount,
                             per_kg_mg=amount if self.per_kg else None, doses_per_day=per_day,
                             evidence=text[self.start:self.end].strip(), span=(self.start, self.end), clause=clause)


_TERMS: dict[str, tuple[str, ...]] = {}


def _terms(drug: Drug) -> tuple[str, ...]:
    """Every name of the drug as it can appear in normalised text (built once per drug)."""
    terms = _TERMS.get(drug.name)
    if terms is None:
        written = {t.lower().replace("'", "") for t in drug.terms} | {normalise_term(t) for t in drug.terms}
        terms = _TERMS[drug.name] = tuple(sorted(written, key=len, reverse=True))
    return terms


def _drug_positions(text: str, drugs: list[Drug]) -> list[tuple[int, Drug]]:
    """Where each drug is named (plain substring search, whole words only)."""
    positions = []
    size = len(text)
    for drug in drugs:
        for term in _terms(drug):
            at = text.find(term)
            while at != -1:
                end = at + len(term)
                if (at == 0 or not text[at - 1].isalnum()) and (end == size or not text[end].isalnum()):
                    positions.append((at, drug))
                at = text.find(term, end)
    positions.sort(key=lambda item: item[0])
    return positions


def _attribute(position: int, sentence_start: int, sentence_end: int,
               positions: list[tuple[int, Drug]]) -> Drug | None:
    in_sentence = [(abs(at - position), drug) for at, drug in positions if sentence_start <= at < sentence_end]
    if in_sentence:
        return min(in_sentence, key=lambda item: item[0])[1]
    before = [drug for at, drug in positions if at < position]
    return before[-1] if before else None
