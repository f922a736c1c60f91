"""Read vital signs and laboratory values with their units, as clinicians write them:
"HR 124", "pulse 36 bpm", "BP 92/58", "sats 86% RA", "T 38.9", "temp 101.8 F", "GCS 12 (E3 V4 M5)",
"K+ 6.8", "lactate 4.6", "BM 2.1", "ketones 4.2", "Hb 68", "PEF 150 (35% of best)", "CRT 4 s".

One search over the text finds every label ("hr", "sats", "k+"...) and every number followed by a
unit that names its observation ("36 bpm", "39.2 °c", "88/50 mmhg"); each is then read with one
anchored match inside a window of `WINDOW` characters after it. Every quantifier is bounded, so a
match attempt never runs past its window and the cost stays linear in the text's length.

Ambiguity is resolved conservatively: a bare number is never a vital sign (its label or an
identifying unit must be next to it, with at most a few linking words between: "HR was 124",
"sats of 86%"); a value out of the observation's plausible range, or followed by a unit of
something else ("every 4 hr 500 mg"), is not read. Values are converted to one unit per
observation (°F to °C, mg/dL to mmol/L, g/dL to g/L); a value written without a unit takes the
unit its size implies where the file says so (a temperature of 101.8 is °F, a glucose of 180 mg/dL).

Labels, units, linking words and ranges are data (`data/knowledge/clinical_signs.yaml`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from clinical_rlhf.knowledge.signs import PRESSURE_PARTS, ClinicalSigns, ObservationSpec
from clinical_rlhf.safety.lexicon import LEET, LEET_ALTERNATIVES

WINDOW = 64
"""Characters after a label that its value, unit and qualifiers ("on 2 l", "of best") may span."""
_NUMBER = r"\d{1,3}(?:\.\d{1,2})?(?![\d.]\d)"
_OXYGEN_NUMBER = r"\d{1,2}(?:\.\d)?"
_LEET_DIGITS = {letter: digit for table in (LEET_ALTERNATIVES, LEET)
                for digit, letter in table.items() if digit.isdigit()}
"""Letters the normaliser may have decoded a GCS part's digit into: "M5" reads as "ms" when "ms"
is a word the guard knows (multiple sclerosis), "M1" as "mi"."""


def _digit(low: int, high: int) -> str:
    """A character class of the digits low..high and the letters leetspeak decoding makes of them."""
    letters = "".join(sorted(letter for letter, digit in _LEET_DIGITS.items() if low <= int(digit) <= high))
    return f"[{low}-{high}{letters}]"


_GCS_PARTS = (r"e\s?(?P<e>" + _digit(1, 4) + r")\s?,?\s?v\s?(?P<v>" + _digit(1, 5)[:-1] + r"t])\s?,?\s?m\s?(?P<m>"
              + _digit(1, 6) + ")")
_DIGIT = re.compile(r"\d")
_FIRST_WORD = re.compile(r"[a-z0-9@$]+")
_NEAR = 0.01
"""How far "sats below 90" or "HR > 100" moves a value past the number written."""


@dataclass(frozen=True, slots=True)
class Observation:
    kind: str
    """The observation's id in the data file (`heart_rate`, `spo2`...; `systolic` and `diastolic`
    for a blood pressure)."""
    value: float
    """In the observation's canonical unit (°C, mmol/L, g/L, % of best for peak flow)."""
    written: str
    """The words it was read from, as the normalised text has them ("temp 101.8 f")."""
    start: int
    end: int
    """Character offsets of `written` in the normalised text."""
    detail: str = ""
    """What reading it took: a conversion ("101.8 °F = 38.8 °C"), GCS parts, oxygen."""
    on_oxygen: bool | None = None
    """SpO2 only: measured on supplemental oxygen (True), on air (False), or not said (None)."""


def _trie(phrases: Iterable[str]) -> str:
    """An alternation of phrases (spaces matching a run of one or two spaces or hyphens), shaped
    like a letter trie: "h(?:r(?:s)?|eart[\\s\\-]{1,2}rate)|k(?:\\+)?". A position whose letter starts no
    phrase fails at the first branch test instead of trying every phrase in turn (~3x faster than a
    flat alternation of 200 labels), and optional tails come greedy, so the longest phrase at a
    position is tried first."""
    root: dict = {}
    for phrase in {phrase for phrase in phrases if phrase}:
        node = root
        for index, word in enumerate(phrase.split()):
            for atom in ([r"[\s\-]{1,2}"] if index else []) + [re.escape(char) for char in word]:
                node = node.setdefault(atom, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = [atom + emit(child) for atom, child in node.items() if atom]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


def _with_numbers(phrases: Iterable[str]) -> str:
    """A flat alternation, longest first, where a "{n}" in a phrase stands for a number ("on {n} l" for "on 2 l")."""
    parts = sorted(set(phrases), key=len, reverse=True)
    return "|".join(r"[\s\-]{1,2}".join(re.escape(word).replace(r"\{n\}", _OXYGEN_NUMBER) for word in phrase.split())
                    for phrase in parts)


class ObservationReader:
    def __init__(self, signs: ClinicalSigns) -> None:
        self.specs = signs.observations
        self._by_label: dict[str, str] = {}
        for spec in self.specs.values():
            for label in spec.labels:
                self._by_label.setdefault(_squash(label), spec.id)
        self._by_unit = {unit: spec.id for spec in self.specs.values() for unit in spec.identifying_units}
        gap = (r"(?:[\s:=~(,\-]{0,3}(?:" + _trie(signs.linking_words) + r")(?![a-z])){0,3}[\s:=~(\-]{0,3}")
        comparison = (r"(?:(?P<below>" + _trie(signs.comparison_words["below"]) + r")|(?P<above>"
                      + _trie(signs.comparison_words["above"]) + r"))?\s{0,2}")
        self._foreign = re.compile(r"\s{0,2}(?:" + _trie(signs.foreign_units) + r")(?![a-z])")
        self._scan = re.compile(
            r"(?<![a-z0-9])(?:(?P<label>" + _trie(self._label_trie()) + r")(?![a-z])"
            r"|(?P<parts>" + _GCS_PARTS.replace("?P<", "?P<scan_") + r")(?![a-z0-9])"
            r"|(?<![\d.])(?P<number>" + _NUMBER + r"(?:\s{0,2}/\s{0,2}\d{2,3})?)\s{0,2}(?P<unit>"
            + _trie(self._by_unit) + r")(?![a-z]))")
        self._label_starts = frozenset(_FIRST_WORD.match(label).group() for label in self._by_label
                                       if _FIRST_WORD.match(label))
        """The first word of every label, as the normaliser's tokens have it ("k" for "k+")."""
        self._parts_hint = re.compile(r"(?<![a-z0-9])e\s?.\s?,?\s?v")
        self._tails = {spec.id: self._tail(spec, gap, comparison) for spec in self.specs.values()}
        self._gcs_parts = re.compile(_GCS_PARTS)
        self._oxygen = re.compile(r"[\s,;(]{0,3}(?:(?P<oxygen>" + _with_numbers(signs.terms["on_oxygen"])
                                  + r")|(?P<air>" + _trie(signs.terms["on_air"]) + r"))(?![a-z])")
        self._best = {spec.id: re.compile(
            r"[^0-9]{0,12}?(?:(?P<percent>\d{1,3})\s?%\s{0,2}(?:of\s{1,2})?(?:" + _trie(spec.of_best) + r")"
            r"|(?:" + _trie(spec.of_best) + r")[\s:=(]{0,3}(?:is\s|of\s|was\s)?\s{0,2}(?P<best>\d{2,3}))")
            for spec in self.specs.values() if spec.of_best}

    def _label_trie(self) -> list[str]:
        return [label for spec in self.specs.values() for label in spec.labels]

    def _tail(self, spec: ObservationSpec, gap: str, comparison: str) -> re.Pattern[str]:
        """The value after a label: linking words, a comparison, the number (or two for a
        pressure, a total and E/V/M parts for GCS), then the unit when one is written."""
        units = _trie(spec.units)
        unit = r"(?:\s{0,2}(?P<unit>" + units + r")(?![a-z]))?" if units else ""
        if spec.value == "pressure":
            value = r"(?P<value>\d{2,3})\s{0,2}/\s{0,2}(?P<second>\d{2,3})(?!\d)"
        elif spec.value == "gcs":
            parts = _GCS_PARTS.replace("?P<", "?P<tail_")
            value = (r"(?:(?P<value>\d{1,2})(?!\d)(?:\s{0,2}/\s{0,2}15)?[\s,(]{0,3}(?P<parts>" + parts + r")?"
                     r"|(?P<parts_only>" + parts.replace("?P<tail_", "?P<only_") + r"))")
        else:
            value = r"(?P<value>" + _NUMBER + r")"
        return re.compile(gap + comparison + value + unit)

    # -- reading -------------------------------------------------------------------------------

    def read(self, text: str, words: frozenset[str] | None = None) -> list[Observation]:
        """Every value the text states with its label or identifying unit, in text order.
        `words` (the text's distinct tokens) lets a text with no label, no identifying unit and
        no GCS parts skip the search: most questions state no value at all."""
        if _DIGIT.search(text) is None:
            return []
        if words is not None and self._label_starts.isdisjoint(words) \
                and not any(unit in text for unit in self._by_unit) and self._parts_hint.search(text) is None:
            return []
        found: list[Observation] = []
        read_to = 0
        for match in self._scan.finditer(text):
            if match.start() < read_to:
                continue  # the number of a value already read ("hr 124 bpm")
            if match.group("label") is not None:
                kind = self._by_label.get(_squash(match.group("label")))
                read = self._after_label(text, match, kind) if kind else []
            elif match.group("parts") is not None:
                read = [self._gcs(text, match.start(), match.end(), None, match.group("parts"))]
            else:
                read = self._with_unit(text, match)
            read = [observation for observation in read if observation is not None]
            if read:
                found += read
                read_to = max(observation.end for observation in read)
        return found

    def _after_label(self, text: str, label: re.Match[str], kind: str) -> list[Observation | None]:
        spec = self.specs[kind]
        tail = self._tails[kind].match(text, label.end(), min(len(text), label.end() + WINDOW))
        if tail is None or tail.group("value") is None and spec.value != "gcs":
            return []
        unit = tail.groupdict().get("unit")
        if unit is None and self._foreign.match(text, tail.end(), min(len(text), tail.end() + 12)):
            return []  # "every 4 hr 500 mg": the number belongs to something else
        start, end = label.start(), tail.end()
        if spec.value == "pressure":
            return self._pressure(text, start, end, tail.group("value"), tail.group("second"))
        if spec.value == "gcs":
            parts = tail.group("parts") or tail.group("parts_only")
            return [self._gcs(text, start, end, tail.group("value"), parts)]
        value = float(tail.group("value"))
        if tail.group("below"):
            value -= _NEAR
        elif tail.group("above"):
            value += _NEAR
        return [self._number(text, spec, start, end, value, unit)]

    def _with_unit(self, text: str, match: re.Match[str]) -> list[Observation | None]:
        """A number whose unit names the observation ("36 bpm", "39.2 °c", "88/50 mmhg")."""
        kind = self._by_unit.get(_squash(match.group("unit")))
        if kind is None:
            return []
        spec, number = self.specs[kind], match.group("number")
        if spec.value == "pressure":
            if "/" not in number:
                return []
            systolic, diastolic = (part.strip() for part in number.split("/"))
            return self._pressure(text, match.start(), match.end(), systolic, diastolic)
        if "/" in number:
            return []
        return [self._number(text, spec, match.start("number"), match.end(), float(number), match.group("unit"))]

    def _number(self, text: str, spec: ObservationSpec, start: int, end: int, written: float,
                unit: str | None) -> Observation | None:
        conversion, unit_name = self._conversion(spec, written, unit)
        value = (written + conversion[1]) * conversion[0]
        detail = f"{written:g} {unit_name} = {value:.1f} {spec.unit}" if conversion != (1.0, 0.0) else ""
        on_oxygen = None
        if spec.value == "peak_flow":
            value, detail, end = self._percent_of_best(text, spec, written, unit, end)
            if value is None:
                return None
        elif not spec.range[0] <= value <= spec.range[1]:
            return None
        if spec.id == "spo2":
            on_oxygen, end = self._oxygen_after(text, end)
            detail = {True: "on oxygen", False: "on air", None: ""}[on_oxygen]
        return Observation(spec.id, round(value, 2), _written(text, start, end), start, end, detail, on_oxygen)

    def _conversion(self, spec: ObservationSpec, value: float, unit: str | None) -> tuple[tuple[float, float], str]:
        """(factor, offset) to the canonical unit and the unit's name: the written unit's, or for a
        value with no unit (or an ambiguous one, "degrees") the first `unitless` unit its size is below."""
        key = _squash(unit) if unit else None
        conversion = spec.units.get(key) if key else None
        if conversion is not None:
            return conversion, key
        for bound, implied in spec.unitless:
            if value < bound:
                return spec.units[implied] or (1.0, 0.0), implied
        return (1.0, 0.0), spec.unit

    def _percent_of_best(self, text: str, spec: ObservationSpec, written: float, unit: str | None,
                         end: int) -> tuple[float | None, str, int]:
        """Peak flow as % of best or predicted: written as a percentage, or a rate with the best
        or predicted rate next to it ("PEF 150, best 450"). A rate alone cannot be judged."""
        after = self._best[spec.id].match(text, end, min(len(text), end + WINDOW)) if spec.id in self._best else None
        if unit and unit.strip() == "%":
            return (written, f"{written:g}% of best or predicted", after.end() if after else end) \
                if 5 <= written <= 150 else (None, "", end)
        if after is None or not spec.range[0] <= written <= spec.range[1]:
            return None, "", end
        if after.group("percent"):
            percent = float(after.group("percent"))
            return percent, f"{written:g} L/min, {percent:g}% of best or predicted", after.end()
        best = float(after.group("best"))
        if best <= 0:
            return None, "", end
        percent = round(100 * written / best, 1)
        return percent, f"{written:g} of best {best:g} L/min = {percent:g}%", after.end()

    def _oxygen_after(self, text: str, end: int) -> tuple[bool | None, int]:
        match = self._oxygen.match(text, end, min(len(text), end + 32))
        if match is None:
            return None, end
        return match.group("oxygen") is not None, match.end()

    def _pressure(self, text: str, start: int, end: int, first: str | None,
                  second: str | None) -> list[Observation | None]:
        if first is None or second is None:
            return []
        systolic, diastolic = float(first), float(second)
        spec = self.specs.get("blood_pressure")
        low, high = spec.range if spec else (30.0, 300.0)
        if not (low <= diastolic < systolic <= high):
            return []  # "10/12" is a date, "80/120" a typo: neither is read as a blood pressure
        written = _written(text, start, end)
        detail = f"{systolic:g}/{diastolic:g} mmHg"
        return [Observation(part, value, written, start, end, detail)
                for part, value in zip(PRESSURE_PARTS, (systolic, diastolic))]

    def _gcs(self, text: str, start: int, end: int, total: str | None, parts: str | None) -> Observation | None:
        detail = ""
        value = float(total) if total else None
        if parts:
            found = self._gcs_parts.search(parts)
            eye, verbal, motor = (int(_LEET_DIGITS.get(found[part], found[part])) if found[part] != "t" else 1
                                  for part in "evm")  # "VT": intubated, scored 1 (no verbal response)
            detail = f"E{eye} V{verbal} M{motor}"
            if value is None:
                value = float(eye + verbal + motor)
                detail += f" = {value:g}"
        if value is None or not 3 <= value <= 15:
            return None
        return Observation("gcs", value, _written(text, start, end), start, end, detail)


def _written(text: str, start: int, end: int) -> str:
    """The words of a reading, without the brackets and commas a window may end on."""
    return text[start:end].strip(" \t\n,;:(=-")


def _squash(words: str) -> str:
    """A label or unit as written ("heart  rate", "o2-sats") -> its data-file form ("heart rate")."""
    return " ".join(words.replace("-", " ").split())
