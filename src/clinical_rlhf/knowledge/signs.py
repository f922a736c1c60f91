"""Clinician language as data: how vital signs and laboratory values are written, the thresholds
that make a value an emergency, early-warning scores (NEWS2, qSOFA), examination findings and
published decision rules, each with its source (`data/knowledge/clinical_signs.yaml`, whose header
gives the schema; docs/clinical_signs.md has every table).

    signs = load_clinical_signs()            # shipped file; cached per directory
    signs.observations["heart_rate"].labels  # ("hr", "heart rate", "pulse", ...)
    signs.thresholds[0]                      # Threshold(id="spo2_low", observation="spo2", ...)

A malformed file raises `ConfigError` naming the file, the entry and the key. No torch here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.language import DEFAULT_DIRECTORY
from clinical_rlhf.knowledge.loader import _expand_ranges
from clinical_rlhf.knowledge.yaml_file import parse_yaml

SIGNS_FILE = "clinical_signs.yaml"
URGENCY_LEVELS = ("emergency", "urgent", "routine", "self_care")
CONTEXTS = ("infection", "reduced_consciousness", "hypercapnic_target", "pregnancy")
"""What a rule may require the text to state (`when`) or not to state (`unless`)."""
VALUE_KINDS = ("number", "pressure", "gcs", "peak_flow")
PRESSURE_PARTS = ("systolic", "diastolic")
"""The observations a `pressure` value gives ("BP 92/58")."""
_BOUND_KEYS = ("at_least", "above", "below", "at_most")


@dataclass(frozen=True, slots=True)
class Bounds:
    at_least: float | None = None
    above: float | None = None
    below: float | None = None
    at_most: float | None = None

    def holds(self, value: float) -> bool:
        return ((self.at_least is None or value >= self.at_least) and (self.above is None or value > self.above)
                and (self.below is None or value < self.below) and (self.at_most is None or value <= self.at_most))

    def describe(self) -> str:
        parts = [f"{word} {limit:g}" for word, limit in
                 ((">=", self.at_least), (">", self.above), ("<", self.below), ("<=", self.at_most))
                 if limit is not None]
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class ObservationSpec:
    id: str
    name: str
    unit: str
    labels: tuple[str, ...]
    value: str
    units: Mapping[str, tuple[float, float] | None]
    """Unit as written -> (factor, offset): canonical = (value + offset) * factor; None: by magnitude."""
    identifying_units: tuple[str, ...]
    unitless: tuple[tuple[float, str], ...]
    range: tuple[float, float]
    of_best: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Threshold:
    id: str
    observation: str
    bounds: Bounds
    urgency: str
    source: str
    min_age: float = 16.0
    max_age: float | None = None
    when: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    also: tuple[str, Bounds] | None = None

    def applies_to_age(self, age: float | None) -> bool:
        """No stated age: the rule applies unless it is for children only (it has a `max_age`)."""
        if age is None:
            return self.max_age is None
        return age >= self.min_age and (self.max_age is None or age < self.max_age)


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    name: str
    phrases: tuple[str, ...]
    urgency: str
    source: str
    requires_any: tuple[str, ...] = ()
    when: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleElement:
    id: str
    points: float
    phrases: tuple[str, ...] = ()
    absent_phrases: tuple[str, ...] = ()
    observation: str | None = None
    bounds: Bounds | None = None
    ages: tuple[tuple[float, float], ...] = ()
    count_bands: tuple[tuple[int, float], ...] = ()
    history: bool = False
    slot: str | None = None


@dataclass(frozen=True, slots=True)
class Band:
    at_least: float
    urgency: str
    label: str


@dataclass(frozen=True, slots=True)
class DecisionRule:
    id: str
    name: str
    source: str
    applies_when: tuple[str, ...]
    min_elements: int
    elements: tuple[RuleElement, ...]
    bands: tuple[Band, ...]

    def band(self, score: float) -> Band | None:
        return next((band for band in self.bands if score >= band.at_least), None)


@dataclass(frozen=True, slots=True)
class News2:
    source: str
    min_age: float
    parameters: Mapping[str, tuple[tuple[float, int], ...]]
    oxygen_points: int
    consciousness_points: int
    bands: tuple[Band, ...]
    single_parameter_3: Band


@dataclass(frozen=True, slots=True)
class Qsofa:
    source: str
    respiratory_rate_at_least: float
    systolic_at_most: float
    positive_at_least: int
    urgency: str


@dataclass(frozen=True, slots=True)
class Sepsis:
    source: str
    high_risk_thresholds: frozenset[str]
    high_risk_findings: frozenset[str]


@dataclass(frozen=True, slots=True)
class ConsciousnessLevel:
    terms: str
    """The phrase set of `terms` that states it."""
    level: str
    """Its letter on the ACVPU scale (C, V, P, U)."""
    urgency: str
    source: str


@dataclass(frozen=True)
class ClinicalSigns:
    terms: Mapping[str, tuple[str, ...]]
    consciousness: tuple[ConsciousnessLevel, ...]
    observations: Mapping[str, ObservationSpec]
    linking_words: tuple[str, ...]
    comparison_words: Mapping[str, tuple[str, ...]]
    foreign_units: tuple[str, ...]
    thresholds: tuple[Threshold, ...]
    sepsis: Sepsis
    news2: News2
    qsofa: Qsofa
    findings: tuple[Finding, ...]
    rules: tuple[DecisionRule, ...]
    path: Path


@functools.lru_cache(maxsize=8)
def load_clinical_signs(directory: Path | None = None) -> ClinicalSigns:
    """The clinical signs file of `directory` (a knowledge directory without one falls back to the
    shipped file), validated; loaded once per directory."""
    path = Path(directory or DEFAULT_DIRECTORY) / SIGNS_FILE
    if not path.is_file():
        path = DEFAULT_DIRECTORY / SIGNS_FILE
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the clinical signs file {path}: {exc}") from None
    top = _Entry(path, "the file", raw)
    terms = {name: _term_set(top.sub(f"phrase set terms.{name}", body))
             for name, body in top.mapping("terms").items()}
    for name in ("infection", "hypercapnic_target", "pregnancy", "on_oxygen", "on_air", "consciousness_confusion",
                 "consciousness_voice", "consciousness_pain", "consciousness_unresponsive"):
        if name not in terms:
            top.fail("terms", f"needs the phrase set {name!r}")
    observations = {name: _observation(top.sub(f"observation {name!r}", body), name)
                    for name, body in top.mapping("observations").items()}
    observed = set(observations) | set(PRESSURE_PARTS)
    thresholds = tuple(_threshold(top.sub(f"threshold {index}", body), observed)
                       for index, body in enumerate(top.list("thresholds"), start=1))
    findings = tuple(_finding(top.sub(f"finding {index}", body)) for index, body in enumerate(top.list("findings"), 1))
    rules = tuple(_rule(top.sub(f"decision rule {index}", body), observed)
                  for index, body in enumerate(top.list("decision_rules"), start=1))
    for kind, records in (("threshold", thresholds), ("finding", findings), ("decision rule", rules)):
        seen: set[str] = set()
        for record in records:
            if record.id in seen:
                top.fail(kind, f"id {record.id!r} is used twice; ids must be unique")
            seen.add(record.id)
    comparison = top.sub("comparison_words", top.mapping("comparison_words"))
    consciousness = []
    for name, body in top.mapping("consciousness_levels").items():
        level = top.sub(f"consciousness level {name!r}", body)
        if name not in terms:
            level.fail("", "names no phrase set of `terms`")
        consciousness.append(ConsciousnessLevel(terms=name, level=level.text("level"), urgency=level.urgency(),
                                                source=level.text("source")))
    return ClinicalSigns(
        terms=terms, consciousness=tuple(consciousness), observations=observations,
        linking_words=top.strings("linking_words"),
        comparison_words={"below": comparison.strings("below"), "above": comparison.strings("above")},
        foreign_units=top.strings("foreign_units"), thresholds=thresholds,
        sepsis=_sepsis(top.sub("sepsis", top.mapping("sepsis")),
                       {t.id for t in thresholds} | {f"acvpu_{c.level.lower()}" for c in consciousness},
                       {f.id for f in findings}),
        news2=_news2(top.sub("news2", top.mapping("news2"))), qsofa=_qsofa(top.sub("qsofa", top.mapping("qsofa"))),
        findings=findings, rules=rules, path=path)


# ----------------------------------------------------------------------------- entries


class _Entry:
    """Typed access to one mapping of the file; every error names the file, the entry and the key."""

    def __init__(self, path: Path, where: str, raw: Any) -> None:
        self.path, self.where, self.raw = path, where, raw
        if not isinstance(raw, dict):
            self.fail("", f"must be a mapping of keys, not {type(raw).__name__}")

    def fail(self, key: str, problem: str):
        at = f", key {key!r}" if key else ""
        raise ConfigError(f"{self.path}: {self.where}{at} {problem} (see the file's header for the schema)")

    def sub(self, where: str, raw: Any) -> _Entry:
        return _Entry(self.path, where, raw)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.raw:
            if default is ...:
                self.fail(key, "is missing")
            return default
        value = self.raw[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.fail(key, f"must be {getattr(kind, '__name__', 'a number')}, not {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value = self.get(key, str)
        if not value.strip():
            self.fail(key, "must not be empty")
        return value.strip()

    def number(self, key: str, default: Any = ...) -> Any:
        return self.get(key, (int, float), default)

    def mapping(self, key: str) -> dict:
        return self.get(key, dict)

    def list(self, key: str) -> list:
        return self.get(key, list)

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        if key not in self.raw and default is not ...:
            return default
        values = self.get(key, list)
        if not all(isinstance(v, (str, int, float)) and str(v).strip() for v in values):
            self.fail(key, "must be a list of non-empty strings")
        # A phrase may hold one numeric range ("calf {3-10} cm bigger"), as in the other knowledge files.
        return tuple(phrase for v in values for phrase in _expand_ranges(str(v).strip().lower()))

    def urgency(self) -> str:
        value = self.text("urgency")
        if value not in URGENCY_LEVELS:
            self.fail("urgency", f"is {value!r}; use one of {', '.join(URGENCY_LEVELS)}")
        return value

    def contexts(self, key: str) -> tuple[str, ...]:
        values = self.strings(key, ())
        unknown = [v for v in values if v not in CONTEXTS]
        if unknown:
            self.fail(key, f"names unknown contexts {unknown}; known: {', '.join(CONTEXTS)}")
        return values

    def bounds(self, required: bool = True) -> Bounds | None:
        given = {key: float(self.number(key)) for key in _BOUND_KEYS if key in self.raw}
        if not given:
            if required:
                self.fail("", f"needs at least one of {', '.join(_BOUND_KEYS)}")
            return None
        return Bounds(**given)

    def observation(self, key: str, observed: set[str]) -> str:
        name = self.text(key)
        if name not in observed:
            self.fail(key, f"names unknown observation {name!r}; known: {', '.join(sorted(observed))}")
        return name

    def pairs(self, key: str) -> tuple[tuple[float, float], ...]:
        values = self.get(key, list, ())
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, (int, float)) for x in p) for p in values):
            self.fail(key, "must be a list of [number, number] pairs")
        return tuple((float(a), float(b)) for a, b in values)


def _term_set(entry: _Entry) -> tuple[str, ...]:
    """A phrase set's phrases; like every language set, it says what it is for and where it comes from."""
    entry.text("purpose")
    entry.text("source")
    return entry.strings("phrases")


def _observation(entry: _Entry, name: str) -> ObservationSpec:
    value = entry.text("value")
    if value not in VALUE_KINDS:
        entry.fail("value", f"is {value!r}; use one of {', '.join(VALUE_KINDS)}")
    units: dict[str, tuple[float, float] | None] = {}
    for unit, conversion in entry.mapping("units").items():
        if conversion == "auto":
            units[str(unit).lower()] = None
        elif isinstance(conversion, list) and len(conversion) == 2 \
                and all(isinstance(x, (int, float)) for x in conversion):
            units[str(unit).lower()] = (float(conversion[0]), float(conversion[1]))
        else:
            entry.fail("units", f"unit {unit!r} must map to [factor, offset] or 'auto'")
    unitless = []
    for pair in entry.get("unitless", list, []):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (int, float)) and pair[1] in units):
            entry.fail("unitless", "must be a list of [bound, unit] with units from `units`")
        unitless.append((float(pair[0]), str(pair[1])))
    identifying = entry.strings("identifying_units", ())
    if any(unit not in units for unit in identifying):
        entry.fail("identifying_units", "may only hold units listed under `units`")
    low_high = entry.get("range", list)
    if len(low_high) != 2 or not all(isinstance(x, (int, float)) for x in low_high) or low_high[0] >= low_high[1]:
        entry.fail("range", "must be [lowest, highest] plausible value")
    return ObservationSpec(id=name, name=entry.text("name"), unit=entry.text("unit"), labels=entry.strings("labels"),
                           value=value, units=units, identifying_units=identifying, unitless=tuple(unitless),
                           range=(float(low_high[0]), float(low_high[1])), of_best=entry.strings("of_best", ()))


def _threshold(entry: _Entry, observed: set[str]) -> Threshold:
    also = None
    if "also" in entry.raw:
        other = entry.sub(f"{entry.where} `also`", entry.mapping("also"))
        also = (other.observation("observation", observed), other.bounds())
    max_age = entry.number("max_age", None)
    return Threshold(id=entry.text("id"), observation=entry.observation("observation", observed), bounds=entry.bounds(),
                     urgency=entry.urgency(), source=entry.text("source"), min_age=float(entry.number("min_age", 16)),
                     max_age=float(max_age) if max_age is not None else None, when=entry.contexts("when"),
                     unless=entry.contexts("unless"), also=also)


def _finding(entry: _Entry) -> Finding:
    return Finding(id=entry.text("id"), name=entry.text("name"), phrases=entry.strings("phrases"),
                   urgency=entry.urgency(), source=entry.text("source"),
                   requires_any=entry.strings("requires_any", ()), when=entry.contexts("when"))


def _element(entry: _Entry, observed: set[str]) -> RuleElement:
    observation = entry.observation("observation", observed) if "observation" in entry.raw else None
    element = RuleElement(
        id=entry.text("id"), points=float(entry.number("points")), phrases=entry.strings("phrases", ()),
        absent_phrases=entry.strings("absent_phrases", ()), observation=observation,
        bounds=entry.bounds() if observation else None, ages=entry.pairs("ages"),
        count_bands=tuple((int(n), points) for n, points in entry.pairs("count_bands")),
        history=entry.get("history", bool, False), slot=entry.get("slot", str, None))
    if not (element.phrases or element.absent_phrases or element.observation or element.ages):
        entry.fail("", "needs phrases, absent_phrases, an observation or ages to recognise it by")
    return element


def _bands(entry: _Entry, key: str) -> tuple[Band, ...]:
    bands = []
    for index, body in enumerate(entry.list(key), start=1):
        band = entry.sub(f"{entry.where} band {index}", body)
        bands.append(Band(at_least=float(band.number("at_least")), urgency=band.urgency(), label=band.text("label")))
    if [b.at_least for b in bands] != sorted((b.at_least for b in bands), reverse=True):
        entry.fail(key, "must be listed highest `at_least` first")
    return tuple(bands)


def _rule(entry: _Entry, observed: set[str]) -> DecisionRule:
    rule_id = entry.text("id")
    elements = tuple(_element(entry.sub(f"rule {rule_id!r} element {index}", body), observed)
                     for index, body in enumerate(entry.list("elements"), start=1))
    return DecisionRule(id=rule_id, name=entry.text("name"), source=entry.text("source"),
                        applies_when=entry.strings("applies_when"), min_elements=int(entry.number("min_elements")),
                        elements=elements, bands=_bands(entry, "bands"))


def _news2(entry: _Entry) -> News2:
    parameters = {}
    for name, bands in entry.mapping("parameters").items():
        pairs = entry.sub(f"news2 parameter {name!r}", {"bands": bands}).pairs("bands")
        parameters[name] = tuple((upper, int(points)) for upper, points in pairs)
    for name in ("respiratory_rate", "spo2_scale_1", "spo2_scale_2_air", "spo2_scale_2_oxygen", "systolic",
                 "heart_rate", "temperature"):
        if name not in parameters:
            entry.fail("parameters", f"needs {name!r}")
    single = entry.sub("news2 single_parameter_3", entry.mapping("single_parameter_3"))
    return News2(source=entry.text("source"), min_age=float(entry.number("min_age")), parameters=parameters,
                 oxygen_points=int(entry.number("oxygen_points")),
                 consciousness_points=int(entry.number("consciousness_points")), bands=_bands(entry, "bands"),
                 single_parameter_3=Band(at_least=3, urgency=single.urgency(), label=single.text("label")))


def _qsofa(entry: _Entry) -> Qsofa:
    return Qsofa(source=entry.text("source"),
                 respiratory_rate_at_least=float(entry.number("respiratory_rate_at_least")),
                 systolic_at_most=float(entry.number("systolic_at_most")),
                 positive_at_least=int(entry.number("positive_at_least")), urgency=entry.urgency())


def _sepsis(entry: _Entry, thresholds: set[str], findings: set[str]) -> Sepsis:
    high_thresholds = entry.strings("high_risk_thresholds")
    high_findings = entry.strings("high_risk_findings")
    for key, names, known in (("high_risk_thresholds", high_thresholds, thresholds),
                              ("high_risk_findings", high_findings, findings)):
        unknown = sorted(set(names) - known)
        if unknown:
            entry.fail(key, f"names unknown ids {unknown}")
    return Sepsis(source=entry.text("source"), high_risk_thresholds=frozenset(high_thresholds),
                  high_risk_findings=frozenset(high_findings))
