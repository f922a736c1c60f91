"""Amounts, strengths and frequencies in an answer, turned into a dose and a daily total and
compared with the knowledge base's maxima.

    "two 500 mg tablets every 4 hours"  -> 1000 mg per dose x 6 per day = 6000 mg/day
    "1 g q6h"                            -> 1000 mg x 4 = 4000 mg/day
    "methotrexate 10 mg daily"          -> 70 mg/week against a 25 mg/week maximum
    "15 mg/kg every 6 hours"            -> 60 mg/kg/day against the children's maximum

An interval range ("every 4 to 6 hours") counts at its longer interval, the reading of the
labels that use it. Amounts called harmful ("8 g is an overdose") are not advice and are skipped;
amounts stated as limits ("no more than 8 g a day") are checked, since a wrong limit harms too.

`find_doses` reads a text one ". "-separated piece at a time and keeps what each piece holds
(amounts, frequencies, clauses, where drugs are named), from a piece's second sighting on:
sampled answers repeat sentences. `readings` and `attributed` are the plain definition it must
match (`tests/safety/test_fast_paths.py`).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import NamedTuple

from clinical_rlhf.knowledge import Drug, normalise_term
from clinical_rlhf.safety.lexicon import LANGUAGE, NUMBER_WORDS
from clinical_rlhf.safety.memo import make_room

_NUMBER = r"\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+"
_COUNT = r"\d+|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_UNIT = r"mg|milligrams?|mcg|micrograms?|ug|g|gm|grams?|gr"
_FORM = r"tablets?|tabs?|capsules?|caps?|pills?|caplets?|softgels?|gelcaps?|lozenges?|sachets?|doses?"
_PER_KG = r"(?:\s*/\s*kg|\s+per\s+kg|\s+per\s+kilo(?:gram)?)"

# An amount with its unit; a count before it ("two 500 mg tablets", "2 x 500 mg", "2 tablets of
# 500 mg") and a multiplier after it ("500 mg x 2") are read from the few characters around it,
# which keeps the scan of the whole text to one simple pattern.
# Starts with a digit so the regex engine can skip to digits quickly. The look-behind right after
# the first digit refuses a start inside a word or a number (a letter other than "x", a digit, "_",
# "." or "," before it: "2x500mg" may start at the 5), so "1,000,000,1,000,000,..." is tried once,
# not once per digit group. The number's digits and commas are taken possessively (`*+`): giving
# one back can never let the unit match (a unit starts with a letter), and without it the engine
# walks back over the whole run on every failure. Both keep the scan linear in the text's length
# (`tests/safety/test_linear_shape.py`); `_INSIDE_WORD` is the same test, kept for the count
# reader's look-back.
_AMOUNT = re.compile(rf"(?P<first>\d(?<![a-wyz0-9_.,]\d)[\d,]*+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(?P<second>{_NUMBER}))?\s*"
                     rf"(?P<unit>{_UNIT})\b(?P<kg>{_PER_KG})?")
_INSIDE_WORD = frozenset("abcdefghijklmnopqrstuvwyz0123456789_.,")  # "x" may precede: "2x500mg"
# A liquid's concentration right after an amount ("120mg/5ml", "100 mg in 5 ml", "250 mg per 5 mL"),
# and a volume given as the dose ("5 ml", "2.5 millilitres"), read in a few characters around it.
_VOLUME_UNIT = r"(?:ml|mls|millilitres?|milliliters?)\b"
_PER_VOLUME = re.compile(rf"\s*(?:/|per|in|in each|in every)\s*(?P<volume>\d+(?:\.\d+)?)?\s*{_VOLUME_UNIT}")
_VOLUME = re.compile(rf"(?<![\d./])(?P<volume>\d+(?:\.\d+)?)\s*{_VOLUME_UNIT}")
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
    # "every 4 hours", "every four to six hours": intervals in digits or words
    r"every\s+(?P<every_lo>\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)(?:\s*(?:-|–|to|or)\s*(?P<every_hi>\d+(?:\.\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve))?"
    r"\s*(?P<every_unit>hours?|hrs?|h|minutes?|mins?|days?)\b"
    r"|\bq\s?(?P<q_lo>\d+)(?:\s*-\s*(?P<q_hi>\d+))?\s?h\b"
    r"|\b(?P<every_other>every other day|alternate days)\b"
    r"|\b(?P<hourly>hourly|every hour)\b"
    rf"|\b{_TIMES}(?:\s+times?)?\s+(?:a|per|each|every)\s+(?P<times_unit>day|week|24 hours)\b"
    rf"|\b{_TIMES.replace('<n>', '<n2>')}(?:\s+times?)?\s+(?:daily|weekly|in 24 hours|in a day)\b"
    r"|\b(?P<bid>bid|b\.i\.d\.?|bd|b\.d\.)(?![a-z])|\b(?P<tid>tid|t\.i\.d\.?|tds|t\.d\.s\.?)(?![a-z])"
    r"|\b(?P<qid>qid|q\.i\.d\.?|qds|q\.d\.s\.?)(?![a-z])"
    r"|\b(?P<weekly>weekly|a week|per week|each week|every week|once a week)\b"
    # A day's total ("4 g in 24 hours", "3 g a day") says how much over the day, not one dose; a
    # course's total ("6 mg in a course") how much over several days.
    r"|\b(?P<course_total>in a course|per course|over (?:the |a |one )?(?:whole |entire |full )?course"
    r"|for (?:the |a )?(?:whole |entire |full )?course|in one course|per treatment course)\b"
    r"|\b(?P<day_total>a day|per day|in 24 hours|per 24 hours|in one day|in a day|over 24 hours|over the day)\b"
    r"|\b(?P<daily>daily|each day|every day|every 24 hours|a night"
    r"|at night|at bedtime|nightly|every morning|each morning|od|qd)\b"
    r")"
)
# A count with no form word, whose use the words right after it give: a frequency ("take two every
# 4 hours", "five a day", "2 four times a day") or one of these ("4 at a time", "two of them at
# bedtime", "2 tonight"). "once", "twice", "a" and "single" are left out: they open frequencies.
# Not after "the", "these", "those" or "both": "the two of them" are two drugs, not two tablets.
_BARE_COUNT = re.compile(r"(?<![\w.,/£$#%-])(?P<count>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten"
                         r"|eleven|twelve|fifteen|twenty)\s+")
_COUNT_USE = re.compile(r"(?:at a time|at once|in one go|in a single go|together|of them|of those|of these|tonight"
                        r"|today)\b")
_NOT_A_COUNT_BEFORE = frozenset({"the", "these", "those", "both", "every", "for", "q", "last", "past",
                                 "next", "after", "in", "within", "aged", "age"})
# A word between a count and its form is the product's name or a word about the units ("12 Imodium
# capsules", "2 more tablets"), unless it measures time ("2 days tablets").
_NOT_A_NAME = frozenset({"of", "day", "days", "week", "weeks", "hour", "hours", "month", "months", "year", "years",
                         "times", "x"}) | LANGUAGE.words("stopwords")
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_SENTENCE_MARK = re.compile(r"[.!?;\n]")
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits: exactly the str.isalnum characters
_SCANS_PER_TEXT = 24
"""Names `drug_positions` finds by scanning the whole text for each; past this, it indexes the words."""


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
    total: str | None = None
    """"day": the amount is a total over the day ("4 g in 24 hours", "3 g a day"), not one dose;
    "course": a total over a course of several days ("6 mg in a course"); None: one dose."""
    units: float | None = None
    """Tablets, capsules, sachets or doses per administration, for a count given with no strength
    ("12 Imodium capsules") of a drug whose label limits units (`Drug.max_single_units`); then
    `per_dose_mg` and `per_kg_mg` are None."""

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
    elif words[index] == "the" and index >= 1 and words[index - 1] == "of":
        index -= 2  # "8 of the 500 mg tablets"
    if index >= 1 and not _is_count(words[index]) and words[index] not in _FORMS \
            and words[index - 1] in _FORMS_OR_OF and any(char.isalpha() for char in words[index]):
        index -= 1  # "tablets of paracetamol 500 mg": skip the drug name
    if index >= 0 and words[index] == "of":
        index -= 1
    if index >= 0 and words[index] in _FORMS:
        index -= 1
    if index < 0 or not _is_count(words[index]):
        return None
    return _number(words[index]), text.rfind(words[index], window_start, start)


def _dose_volume(text: str, start: int, end: int) -> float | None:
    """The volume given as the dose of a liquid whose concentration spans `start:end`: the last
    "N ml" in the `_LOOKBACK` characters before it ("5 ml of Calpol 120mg/5ml"), else the first in
    those after it ("120mg/5ml, give 7.5 ml"); never past a ". ", so a piece reads as the whole."""
    before = text[max(0, start - _LOOKBACK):start]
    before = before[before.rfind(". ") + 1:]
    found = [match.group("volume") for match in _VOLUME.finditer(before)]
    if not found:
        after = text[end:end + _LOOKBACK]
        after = after[:after.find(". ")] if ". " in after else after
        match = _VOLUME.search(after)
        found = [match.group("volume")] if match else []
    return float(found[-1]) if found and float(found[-1]) > 0 else None


def _number(text: str) -> float:
    if text in NUMBER_WORDS:
        return float(NUMBER_WORDS[text])
    return float(text.replace(",", ""))


def doses_per_day(match: re.Match[str]) -> float | None:
    """Administrations per 24 hours for one frequency match; None for a course's total."""
    group = match.group
    every = group("every_lo")
    if every:
        interval = _number(group("every_hi") or every)
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
    if group("course_total"):
        return None  # spread over days the text does not give
    return 1.0


def _total(frequency: re.Match[str] | None) -> str | None:
    """What an amount with this frequency totals: "day", "course", or None (one dose)."""
    if frequency is None:
        return None
    return "day" if frequency.group("day_total") else "course" if frequency.group("course_total") else None


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
    in its sentence, else the last drug named before it, else `fallback` (the question's drug).

    Equal to the plain definition `attributed(text, readings(text, reads_bare_counts([*drugs, fallback])),
    drug_positions(text, drugs), fallback)`, computed from the text's ". "-separated pieces, each read once (`_Piece`)."""
    pieces = _pieces(text)
    counts_alone = reads_bare_counts([*drugs, fallback])
    if pieces is not None and not counts_alone and not any(entry.with_unit for entry, _ in pieces):
        return []  # bare counts count only beside an amount with a unit, or for a drug limited in units
    if pieces is None or any(_crosses_pieces(drug) for drug in drugs) or not _counts_agree(text, pieces):
        found = readings(text, counts_alone)
        return attributed(text, found, drug_positions(text, drugs), fallback) if found else []
    statements: list[DoseStatement] = []
    strengths: dict[str, float] = {}
    named: dict[int, list[tuple[int, Drug]]] = {}
    last_named: dict[int, Drug | None] = {}
    for number, (entry, offset) in enumerate(pieces):
        if not entry.readings:
            continue
        # A piece's first sentence starts, in the whole text, at the space after the ". ".
        first = offset - 1 if offset else 0
        for (start, end, mg, count, strength_mg, per_kg, _), sentence, clause, per_day, total in entry.readings:
            start += offset
            end += offset
            # The drug nearest in the sentence (which lies in this piece), else the last named
            # before the amount in this piece, else the last named in the nearest earlier piece
            # that names one: what `_attribute` picks from every position of the text.
            drug = _nearest(start, sentence[0] + offset if sentence[0] else first, sentence[1] + offset,
                            _named_in(pieces, number, drugs, named))
            if drug is None and number:
                drug = _last_named_up_to(pieces, number - 1, drugs, named, last_named)
            drug = drug or fallback
            if drug is None:
                continue
            statement = _statement(text, drug, strengths, start, end, mg, count, strength_mg, per_kg,
                                   (clause[0] + offset if clause[0] else first, clause[1] + offset), per_day,
                                   total)
            if statement is not None:
                statements.append(statement)
    return statements


class Reading(NamedTuple):
    """An amount as the text states it, before it is given a drug: where it is, its sentence and
    clause (character ranges), and the administrations per day its frequency gives (None: none)."""

    amount: _Amount
    sentence: tuple[int, int]
    clause: tuple[int, int]
    per_day: float | None
    total: str | None
    """What the amount totals ("day", "course"; `DoseStatement.total`), None for one dose."""


def readings(text: str, counts_alone: bool = False) -> list[Reading]:
    """Every amount in `text` with its sentence, clause and frequency: the plain definition that
    the piece-by-piece reading of `find_doses` must match. Bare counts ("take 2 tablets") are read
    beside an amount with a unit, or everywhere with `counts_alone` (`reads_bare_counts`)."""
    return _read(text, counts_alone)[0]


def reads_bare_counts(drugs: Iterable[Drug]) -> bool:
    """Whether a count with no strength means something for one of `drugs`: its label limits
    units ("at most 8 capsules a day"), so "12 Imodium capsules" is checked without a strength."""
    return any(drug is not None and (drug.max_single_units is not None or drug.max_daily_units is not None)
               for drug in drugs)


def _read(text: str, counts_alone: bool) -> tuple[list[Reading], int]:
    """(readings, number of amounts with a unit). Bare counts of a form ("take 2 tablets") are
    read only when the text has an amount with a unit, or with `counts_alone` (a piece of a text
    whose other pieces may have one)."""
    amounts = [_Amount.read(text, match) for match in _AMOUNT.finditer(text)]
    if _LIQUID_NAMES is not None and ("ml" in text or "millil" in text):
        amounts += _liquid_amounts(text, amounts)
        amounts.sort(key=lambda amount: amount.start)
    with_unit = len(amounts)
    if amounts or counts_alone:
        if any(form in text for form in _FORM_CUES):
            taken = _Taken(amounts)
            counted = (_Amount.count_only(text, m) for m in _form_words(text) if m.start() not in taken)
            amounts += [amount for amount in counted if amount is not None]
            amounts.sort(key=lambda amount: amount.start)
        amounts += _Amount.bare_counts(text, _Taken(amounts))
        amounts.sort(key=lambda amount: amount.start)
    if not amounts:
        return [], with_unit
    found: list[Reading] = []
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
        claimed = sentence_start  # a frequency right after an amount is that amount's, not the next one's
        for position in range(index, last + 1):
            amount = amounts[position]
            clause_start = amounts[position - 1].end if position > index else sentence_start
            clause_end = amounts[position + 1].start if position < last else sentence_end
            frequency = amount.frequency(text, max(clause_start, claimed), clause_end)
            if frequency is not None and frequency.start() >= amount.end:
                claimed = frequency.end()
            found.append(Reading(amount, (sentence_start, sentence_end), (clause_start, clause_end),
                                 doses_per_day(frequency) if frequency else None, _total(frequency)))
        index = last + 1
    return found, with_unit


def attributed(text: str, found: list[Reading], positions: list[tuple[int, Drug]],
               fallback: Drug | None) -> list[DoseStatement]:
    """The readings as dose statements: each amount given the nearest drug named in its sentence
    (`positions`: where each drug is named, by position), else the last named before it, else
    `fallback`; a bare count takes the strength last stated for its drug ("paracetamol 500 mg ...
    take two tablets")."""
    statements: list[DoseStatement] = []
    strengths: dict[str, float] = {}
    starts = [at for at, _ in positions]
    for amount, (sentence_start, sentence_end), clause, per_day, total in found:
        drug = _attribute(amount.start, sentence_start, sentence_end, positions, starts) or fallback
        if drug is None:
            continue
        statement = amount.statement(text, drug, strengths, clause, per_day, total)
        if statement is not None:
            statements.append(statement)
    return statements


# -- reading a text piece by piece -------------------------------------------------------------
#
# Sampled answers repeat sentences, so `find_doses` reads each ". "-separated piece of a text once
# and keeps what it found (a piece keeps its ". "). An amount, a form word, a frequency or a clause
# never reaches past a ". " (each pattern stops at the full stop), so what a piece holds is found
# in it as in the whole text, at the piece's offset; the first sentence of a piece starts, in the
# whole text, at the space after the ". ". Two things look across: the count before an amount,
# and where the drugs are named (a name holding ". " is looked for in the whole text).

PIECE_CACHE_SIZE = 8192
"""Pieces whose readings and drug positions are kept; a full store drops its oldest eighth."""


class _Piece:
    """What one piece holds, in its own offsets."""

    __slots__ = ("edges", "positions", "readings", "text", "with_unit")

    def __init__(self, piece: str) -> None:
        self.text = piece
        found, self.with_unit = _read(piece, counts_alone=True)
        self.readings = tuple(found)
        # The count before an amount is read from up to `_LOOKBACK` characters back. Before every
        # piece but the first stands "<word>. ", and "<word>." is neither a count, a form, "x" nor
        # "of", so the whole text reads the same count as the piece unless the reading would start
        # at that word: the amount begins the piece or follows only an "x" or an "of" (the piece
        # "of paracetamol 500 mg" after "take two tablets. "). Those amounts are read again in the
        # whole text (`_piece_readings`).
        edges = []
        for match in _AMOUNT.finditer(piece):
            start = match.start()
            if start >= _LOOKBACK:
                break
            if match.group("second") is None and _reads_past_start(piece, start):
                edges.append((start, _count_before(piece, start)))
        self.edges = tuple(edges)
        self.positions: dict[int, tuple[Drug, tuple[int, ...]]] = {}
        """id(drug) -> (the drug, where the piece names it: `drug_positions`), filled when asked."""


_PIECES: dict[str, _Piece | object] = {}
"""Each piece but a text's last, by its words (the ". " after them is part of the piece)."""
_LAST_PIECES: dict[str, _Piece | object] = {}


_SEEN_ONCE = object()


def _pieces(text: str) -> list[tuple[_Piece, int]] | None:
    """(what each ". "-separated piece of the text holds, its offset); None when a piece is new:
    a piece is read and kept from its second sighting on, so text that never repeats a sentence
    costs one dictionary lookup per piece more than reading it whole."""
    parts = text.split(". ")
    last = parts.pop()
    found = []
    offset = 0
    new = False
    for part in parts:
        entry = _PIECES.get(part)
        if entry.__class__ is _Piece:
            found.append((entry, offset))
            offset += len(part) + 2
        elif _admit(_PIECES, part, entry, part + ". ", found, offset):
            offset += len(part) + 2
        else:
            new = True
    entry = _LAST_PIECES.get(last)
    if entry.__class__ is _Piece:
        found.append((entry, offset))
    elif not _admit(_LAST_PIECES, last, entry, last, found, offset):
        new = True
    return None if new else found


def _admit(cache: dict, key: str, entry: object, piece: str, found: list[tuple[_Piece, int]], offset: int) -> bool:
    """A piece not kept yet: marked on its first sighting (False), read and kept on its second."""
    if entry is None:
        make_room(cache, PIECE_CACHE_SIZE)
        cache[key] = _SEEN_ONCE
        return False
    entry = cache[key] = _Piece(piece)
    found.append((entry, offset))
    return True


def _counts_agree(text: str, pieces: list[tuple[_Piece, int]]) -> bool:
    """Whether the whole text reads the count before each amount near a piece's start as the
    piece alone does (see `_Piece`)."""
    for entry, offset in pieces:
        if offset:
            for start, count in entry.edges:
                if _count_before(text, start + offset) != (None if count is None else (count[0], count[1] + offset)):
                    return False
    return True


def _named_in(pieces: list[tuple[_Piece, int]], number: int, drugs: list[Drug],
              named: dict[int, list[tuple[int, Drug]]]) -> list[tuple[int, Drug]]:
    """`drug_positions` of piece `number`, in the whole text's offsets (each piece's positions
    found once per drug and kept with it; `named` keeps them for one text)."""
    listed = named.get(number)
    if listed is None:
        entry, offset = pieces[number]
        unknown = list({id(drug): drug for drug in drugs
                        if (kept := entry.positions.get(id(drug))) is None or kept[0] is not drug}.values())
        if unknown:  # one search for all of them: one per drug costs the piece's length each time
            found: dict[int, list[int]] = {id(drug): [] for drug in unknown}
            for at, drug in drug_positions(entry.text, unknown):
                found[id(drug)].append(at)
            for drug in unknown:
                entry.positions[id(drug)] = (drug, tuple(found[id(drug)]))
        listed = []
        for drug in drugs:
            kept = entry.positions[id(drug)]
            if kept[1]:
                listed += [(at + offset, drug) for at in kept[1]]
        if len(listed) > 1:
            listed.sort(key=lambda item: item[0])
        named[number] = listed
    return listed


def _last_named_up_to(pieces: list[tuple[_Piece, int]], number: int, drugs: list[Drug],
                      named: dict[int, list[tuple[int, Drug]]], last_named: dict[int, Drug | None]) -> Drug | None:
    """The last drug named in pieces 0..`number` (None: none names one). Each piece is looked at
    once per text (`last_named` keeps the answers), so amounts far from any drug name do not
    each walk back over every earlier piece."""
    walked = []
    found: Drug | None = None
    while number >= 0:
        if number in last_named:
            found = last_named[number]
            break
        listed = _named_in(pieces, number, drugs, named)
        if listed:
            found = listed[-1][1]
            break
        walked.append(number)
        number -= 1
    for earlier in walked:
        last_named[earlier] = found
    if number >= 0:
        last_named[number] = found
    return found


def _reads_past_start(text: str, start: int) -> bool:
    """Whether `_count_before(text, start)`, given a word before `text`, would read it: no word
    before the amount, or only an "x" or an "of"."""
    words = text[:start].replace("×", " x ").replace("*", " x ").split()
    return not words or (len(words) == 1 and words[0] in ("x", "of"))


class _Taken:
    """Whether a position lies inside one of the amounts already read (sorted by start): one
    bisection per question, so a text with many amounts and counts stays linear in its length.
    Naive equivalent: `any(amount.start <= position < amount.end for amount in amounts)`."""

    __slots__ = ("ends", "starts")

    def __init__(self, amounts: list[_Amount]) -> None:
        self.starts = [amount.start for amount in amounts]
        ends, reach = [], -1
        for amount in amounts:  # the furthest end of any amount starting at or before this one
            reach = max(reach, amount.end)
            ends.append(reach)
        self.ends = ends

    def __contains__(self, position: int) -> bool:
        index = bisect_right(self.starts, position) - 1
        return index >= 0 and position < self.ends[index]


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
        concentration = _PER_VOLUME.match(text, end) if not per_kg else None
        if concentration is not None:
            # "5 ml of 120mg/5ml" is 120 mg; the concentration alone is a strength, kept as one dose.
            per_ml = strength / float(concentration.group("volume") or 1.0)
            end = concentration.end()
            volume = _dose_volume(text, start, end)
            return cls(start, end, per_ml * volume if volume else strength, 1.0, strength, False, False)
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
        window_start = max(0, form.start() - _LOOKBACK)
        words = text[window_start:form.start()].split()
        for _ in range(2):  # "12 imodium capsules", "6 ferrous sulfate tablets": the product's name
            if words and not _is_count(words[-1]) and len(words) >= 2 \
                    and words[-1].replace("-", "").isalpha() and words[-1] not in _NOT_A_NAME:
                words.pop()
        if not words or not _is_count(words[-1]):
            return None
        return cls(text.rfind(words[-1], window_start, form.start()), form.end(), None, _number(words[-1]), None,
                   False, False)

    @classmethod
    def bare_counts(cls, text: str, taken: _Taken) -> list[_Amount]:
        """Counts with no form word whose use follows them ("take two every 4 hours", "4 at a time"):
        a count of the strength named earlier, like "take 2 tablets"."""
        found = []
        for match in _BARE_COUNT.finditer(text):
            start, end = match.start(), match.end()
            if start in taken:
                continue
            before = text[max(0, start - 12):start].split()
            if before and before[-1] in _NOT_A_COUNT_BEFORE:
                continue
            use = _COUNT_USE.match(text, end) or _FREQUENCY.match(text, end)
            if use is None:
                continue
            found.append(cls(start, match.end("count"), None, _number(match.group("count")), None, False, False))
        return found

    def frequency(self, text: str, clause_start: int, clause_end: int) -> re.Match[str] | None:
        """The frequency that belongs to the amount (`doses_per_day` reads it): one that follows it
        closely ("1 g every 6 hours") or precedes it ("every 6 hours, take 1 g") in its clause;
        short windows keep the search cheap. None when the clause gives none."""
        return (_FREQUENCY.search(text, self.end, min(clause_end, self.end + _FREQUENCY_REACH))
                or _FREQUENCY.search(text, max(clause_start, self.start - _FREQUENCY_REACH), self.start))

    def statement(self, text: str, drug: Drug, strengths: dict[str, float],
                  clause: tuple[int, int], per_day: float | None, total: str | None = None) -> DoseStatement | None:
        return _statement(text, drug, strengths, self.start, self.end, self.mg, self.count, self.strength_mg,
                          self.per_kg, clause, per_day, total)


def _statement(text: str, drug: Drug, strengths: dict[str, float], start: int, end: int, mg: float | None,
               count: float, strength_mg: float | None, per_kg: bool, clause: tuple[int, int],
               per_day: float | None, total: str | None = None) -> DoseStatement | None:
    """An amount (`_Amount`'s fields) as a dose of `drug`; a bare count takes the drug's last
    strength in `strengths`, None when it has none yet."""
    if mg is None:
        strength = strengths.get(drug.name)
        if strength is None:
            if drug.max_single_units is None and drug.max_daily_units is None:
                return None
            # "12 Imodium capsules": no strength, but the label limits capsules
            return DoseStatement(drug, None, None, per_day, text[start:end].strip(), (start, end), clause, total,
                                 count)
        amount = count * strength
    else:
        amount = mg
        if not per_kg and strength_mg is not None and total is None and \
                (drug.max_single_mg is None or strength_mg <= drug.max_single_mg):
            # "paracetamol 500 mg ... take two tablets"; a day's total ("4 g in 24 hours") or an
            # amount over the single-dose maximum ("that's 5 g") is no tablet's strength
            strengths[drug.name] = strength_mg
    # positional: a named tuple is built several times faster without keywords
    return DoseStatement(drug, None if per_kg else amount, amount if per_kg else None, per_day,
                         text[start:end].strip(), (start, end), clause, total)


_NAMES: dict[int, tuple[Drug, tuple[str, ...], bool]] = {}

_LIQUIDS: dict[str, float] = {}
"""Liquid products of the knowledge bases learned (`learn_names`): name as read -> mg per mL. Only
ever grows: a product's strength is a fact about the product, so every guard of the process reads
the products any of them learned."""
_LIQUID_NAMES: re.Pattern[str] | None = None


def _learn_liquids(drugs: Iterable[Drug]) -> None:
    """Add the drugs' liquid products (`Drug.liquids_mg_per_5ml`) to `_LIQUIDS`; the pieces read
    before are read again, since a product name is an amount now."""
    global _LIQUID_NAMES
    found = {written: mg / 5 for drug in drugs for name, mg in drug.liquids_mg_per_5ml
             for written in (name.lower().replace("'", ""), normalise_term(name))}
    if all(_LIQUIDS.get(name) == mg for name, mg in found.items()):
        return
    _LIQUIDS.update(found)
    names = "|".join(re.escape(name) for name in sorted(_LIQUIDS, key=len, reverse=True))
    _LIQUID_NAMES = re.compile(rf"(?<![\w])(?:{names})(?![\w])")
    _PIECES.clear()
    _LAST_PIECES.clear()


def _liquid_amounts(text: str, amounts: list[_Amount]) -> list[_Amount]:
    """"10 ml of Calpol Infant", "Calpol Six Plus, 5ml": a volume near a liquid product's name is
    that volume of its strength. A name with no volume near it, or followed closely by a written
    concentration (read as such), says no dose."""
    found = []
    taken, starts = _Taken(amounts), [amount.start for amount in amounts]  # amounts sorted by start
    for match in _LIQUID_NAMES.finditer(text):
        start, end = match.span()
        following = bisect_left(starts, end)  # the first amount starting at or after the name
        if start in taken or (following < len(starts) and starts[following] < end + _LOOKBACK):
            continue  # inside an amount, or a written amount follows the name closely
        volume = _dose_volume(text, start, end)
        if volume:
            found.append(_Amount(start, end, _LIQUIDS[match.group()] * volume, 1.0, None, False, False))
    return found


def _names(drug: Drug) -> tuple[tuple[str, ...], bool]:
    """(every name of the drug as it can appear in normalised text, longest first; whether one
    could be found across two pieces: it holds a ". " or starts or ends with a space). Built once
    per drug object and kept with it, so a drug of another knowledge base gets its own."""
    entry = _NAMES.get(id(drug))
    if entry is None or entry[0] is not drug:
        written = {t.lower().replace("'", "") for t in drug.terms} | {normalise_term(t) for t in drug.terms}
        terms = tuple(sorted(written, key=len, reverse=True))
        entry = _NAMES[id(drug)] = (drug, terms, any(". " in term or term != term.strip() for term in terms))
    return entry[1], entry[2]


def learn_names(drugs: Iterable[Drug]) -> None:
    """Work out each drug's written names now (`_names`), so that the first check naming hundreds
    of drugs does not pay for them all (the guard calls it once for its knowledge base)."""
    drugs = list(drugs)
    for drug in drugs:
        _names(drug)
    _learn_liquids(drugs)


def _terms(drug: Drug) -> tuple[str, ...]:
    return _names(drug)[0]


def _crosses_pieces(drug: Drug) -> bool:
    return _names(drug)[1]


def drug_positions(text: str, drugs: list[Drug]) -> list[tuple[int, Drug]]:
    """Where each drug is named (whole words only), sorted by position. The naive equivalent,
    which it must match, is::

        for drug in drugs:
            for term in _terms(drug):
                for each occurrence `at` of term in text (str.find) with no letter or digit on
                either side: positions.append((at, drug))
        positions.sort(key=lambda item: item[0])

    which scans the whole text once per name: fine for the few drugs of an ordinary answer, but a
    text naming hundreds of drugs made that quadratic in its length. Past `_SCANS_PER_TEXT` names,
    the text's words are indexed once and each name is checked only where its first word stands
    (the same positions: no drug name can overlap a second occurrence of itself)."""
    terms = [(drug, term) for drug in drugs for term in _terms(drug)]
    if len(terms) <= _SCANS_PER_TEXT:
        occurrences = ((drug, term, _find_all(text, term)) for drug, term in terms)
    else:
        word_starts: dict[str, list[int]] = {}
        for match in _WORD.finditer(text):
            word_starts.setdefault(match.group(), []).append(match.start())
        occurrences = ((drug, term, _indexed(text, term, word_starts)) for drug, term in terms)
    positions = []
    size = len(text)
    for drug, term, starts in occurrences:
        for at in starts:
            end = at + len(term)
            if (at == 0 or not text[at - 1].isalnum()) and (end == size or not text[end].isalnum()):
                positions.append((at, drug))
    positions.sort(key=lambda item: item[0])
    return positions


def _find_all(text: str, term: str):
    at = text.find(term)
    while at != -1:
        yield at
        at = text.find(term, at + len(term))


def _indexed(text: str, term: str, word_starts: dict[str, list[int]]):
    """Where `term` may stand as a whole word: a whole-word occurrence starts exactly where a word
    equal to the run of letters and digits the term starts with starts (`_WORD` runs are the
    `str.isalnum` runs). A term led by another character is searched for plainly."""
    first = _WORD.match(term)
    if first is None:
        return _find_all(text, term)
    return (at for at in word_starts.get(first.group(), ()) if text.startswith(term, at))


def _attribute(position: int, sentence_start: int, sentence_end: int,
               positions: list[tuple[int, Drug]], starts: list[int]) -> Drug | None:
    """The drug named nearest to `position` inside its sentence (the earlier one on a tie), else
    the last named before `position`. `starts` are the positions of `positions` (sorted): the
    bisections keep this logarithmic. The naive equivalent, which it must match, is::

        in_sentence = [(abs(at - position), drug) for at, drug in positions
                       if sentence_start <= at < sentence_end]
        if in_sentence:
            return min(in_sentence, key=lambda item: item[0])[1]
        before = [drug for at, drug in positions if at < position]
        return before[-1] if before else None
    """
    split = bisect_left(starts, position)
    low = bisect_left(starts, sentence_start)
    high = bisect_left(starts, sentence_end, low)
    if low < high:
        after = max(split, low)
        if split <= low:
            return positions[after][1]
        # the nearest before: the first entry naming the last position before `position`
        before = bisect_left(starts, starts[min(split, high) - 1], low)
        if after >= high or position - starts[before] <= starts[after] - position:
            return positions[before][1]
        return positions[after][1]
    return positions[split - 1][1] if split else None


def _nearest(position: int, sentence_start: int, sentence_end: int,
             positions: list[tuple[int, Drug]]) -> Drug | None:
    """`_attribute` in one pass over `positions` (sorted by position): the first of the nearest
    in the sentence, else the last before `position`."""
    nearest, distance, before = None, 0, None
    for at, drug in positions:
        if sentence_start <= at < sentence_end:
            gap = at - position if at >= position else position - at
            if nearest is None or gap < distance:
                nearest, distance = drug, gap
        elif nearest is None and at < position:
            before = drug
    return nearest if nearest is not None else before
