"""The typed records of the clinical knowledge base and the lookups built over them.

Every record is a frozen dataclass carrying the public source it was taken from. The
`KnowledgeBase` indexes them once (names, brands and synonyms; class membership; interaction
pairs) so that lookups are dictionary hits, which the guard relies on for its speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

InteractionSeverity = Literal["contraindicated", "major", "moderate", "minor"]

# Most to least severe: a lookup that finds several rules returns the most severe one.
SEVERITY_RANK: dict[str, int] = {"contraindicated": 3, "major": 2, "moderate": 1, "minor": 0}

CLASS_PREFIX = "class:"

_APOSTROPHES = re.compile(r"['\u2019]")
_SEPARATORS = re.compile(r"[\W_]+")


def normalise_term(term: str) -> str:
    """Lookup key of a drug name, brand or synonym: case-folded, apostrophes dropped, every other
    run of punctuation or space made one space ("Co-Trimoxazole" and "co trimoxazole" meet,
    "St. John's wort" becomes "st johns wort"), the same words the guard's tokenizer sees."""
    return _SEPARATORS.sub(" ", _APOSTROPHES.sub("", term.casefold())).strip()


@dataclass(frozen=True, slots=True)
class Drug:
    name: str
    """Generic (INN or USAN) name, lower case."""
    synonyms: tuple[str, ...]
    """Other generic names and common abbreviations (acetaminophen for paracetamol)."""
    brands: tuple[str, ...]
    classes: tuple[str, ...]
    """Pharmacological or rule classes (`nsaid`, `maoi`, `qt_prolonging`), used by class-level rules."""
    max_daily_mg: float | None
    """Adult maximum total per 24 hours, in mg; `None` where the label sets none (titrated drugs)."""
    max_single_mg: float | None
    """Adult maximum single dose, in mg; `None` where none is defined."""
    pediatric_max_mg_per_kg_day: float | None
    """Children's maximum per kg of body weight per 24 hours, in mg/kg; `None` where not defined."""
    usual_adult_dose: str
    common_strengths_mg: tuple[float, ...]
    source: str
    max_weekly_mg: float | None = None
    """Adult maximum per week, in mg, for drugs dosed weekly (methotrexate): a daily schedule of a
    weekly drug is the classic fatal error, and only a weekly limit catches it."""
    pediatric_max_single_mg_per_kg: float | None = None
    """Children's maximum single dose per kg of body weight, in mg/kg; `None` where the source
    gives none. An adult-sized single dose for a small child can stay under the daily per-kg
    limit and still be several times the safe single dose."""
    max_single_units: float | None = None
    """Most tablets, capsules, sachets or measured doses at one time, for products whose label
    states its limits in units rather than milligrams (co-codamol: 2 tablets; Imodium: 2 capsules);
    read when a text counts units without a strength ("12 Imodium capsules")."""
    max_daily_units: float | None = None
    """Most units in 24 hours, as the label states it (co-codamol 8 tablets, Lemsip Max 4 sachets)."""
    highest_label_daily_mg: float | None = None
    """Where `max_daily_mg` follows the stricter of two authoritative sources, the other's daily
    maximum (ibuprofen: BNF 2.4 g, FDA label 3.2 g under supervision). The guard holds answers to
    `max_daily_mg`; a text that states the higher source's maximum is not a hallucination."""
    liquids_mg_per_5ml: tuple[tuple[str, float], ...] = ()
    """Liquid products named by their strength-bearing name, with mg per 5 mL (Calpol Infant 120,
    Calpol Six Plus 250): "10 ml of Calpol Infant" is 240 mg, where "10 ml of Calpol" says no dose."""

    @property
    def terms(self) -> tuple[str, ...]:
        """Every name this drug is written as: generic, synonyms, brands."""
        return (self.name, *self.synonyms, *self.brands)


@dataclass(frozen=True, slots=True)
class Interaction:
    id: str
    a: str
    """A drug name or `class:<name>`."""
    b: str
    severity: InteractionSeverity
    effect: str
    source: str


@dataclass(frozen=True, slots=True)
class Contraindication:
    id: str
    drug: str
    """A drug name or `class:<name>`."""
    condition: str
    condition_terms: tuple[str, ...]
    """Phrases that show the condition in a text. Empty for purely age-based rules."""
    severity: InteractionSeverity
    reason: str
    source: str
    min_age_years: float | None = None
    """The rule applies from this age (inclusive), e.g. smokers aged 35 or over."""
    max_age_years: float | None = None
    """The rule applies below this age (exclusive), e.g. tetracyclines under 8 years."""

    @property
    def age_limited(self) -> bool:
        return self.min_age_years is not None or self.max_age_years is not None

    def applies_to_age(self, age_years: float) -> bool:
        if self.min_age_years is not None and age_years < self.min_age_years:
            return False
        if self.max_age_years is not None and age_years >= self.max_age_years:
            return False
        return True


@dataclass(frozen=True, slots=True)
class RedFlag:
    id: str
    name: str
    category: str
    """Body system or kind (`cardiovascular`, `mental_health`, `paediatric`...)."""
    triggers: tuple[str, ...]
    """Phrases that signal the emergency in a text (matched on normalised words)."""
    advice: str
    """What the person must be told, in one sentence."""
    source: str
    requires_any: tuple[str, ...] = ()
    """When set, a trigger counts only if one of these phrases also appears (e.g. the fever
    trigger of the infant rule needs an age under 3 months)."""
    near: tuple[NearRule, ...] = ()
    """Word co-occurrences that signal the emergency however it is phrased ("chest" near
    "squeezing"), for wording the fixed triggers do not list."""
    exclusions: tuple[str, ...] = ()
    """Longer phrases in which a trigger means something else ("ectopic beats" is a harmless
    heart rhythm, not an ectopic pregnancy): a trigger found inside one of them does not count."""


@dataclass(frozen=True, slots=True)
class NearRule:
    """One word from each set, all within `within` words of each other in one sentence."""

    word_sets: tuple[frozenset[str], ...]
    within: int = 4


@dataclass(frozen=True)
class KnowledgeBase:
    drugs: tuple[Drug, ...]
    interactions: tuple[Interaction, ...]
    contraindications: tuple[Contraindication, ...]
    red_flags: tuple[RedFlag, ...]
    directory: Path | None = None
    _by_term: dict[str, Drug] = field(init=False, repr=False, compare=False)
    _by_class: dict[str, tuple[Drug, ...]] = field(init=False, repr=False, compare=False)
    _pairs: dict[tuple[str, str], tuple[Interaction, ...]] = field(init=False, repr=False, compare=False)
    _contra: dict[str, tuple[Contraindication, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_term: dict[str, Drug] = {}
        by_class: dict[str, list[Drug]] = {}
        for drug in self.drugs:
            for term in drug.terms:
                by_term.setdefault(normalise_term(term), drug)
            for cls in drug.classes:
                by_class.setdefault(cls, []).append(drug)
        pairs: dict[tuple[str, str], list[Interaction]] = {}
        for rule in self.interactions:
            pairs.setdefault(_pair_key(rule.a, rule.b), []).append(rule)
        contra: dict[str, list[Contraindication]] = {}
        for rule in self.contraindications:
            contra.setdefault(rule.drug, []).append(rule)
        object.__setattr__(self, "_by_term", by_term)
        object.__setattr__(self, "_by_class", {k: tuple(v) for k, v in by_class.items()})
        object.__setattr__(self, "_pairs", {k: tuple(v) for k, v in pairs.items()})
        object.__setattr__(self, "_contra", {k: tuple(v) for k, v in contra.items()})

    # -- drugs -------------------------------------------------------------------------------

    def drug(self, name: str) -> Drug | None:
        """The drug written as `name` (generic, synonym or brand; any case), or None."""
        return self._by_term.get(normalise_term(name))

    @property
    def drug_terms(self) -> dict[str, Drug]:
        """Every normalised name, synonym and brand -> its drug (a copy; for text matchers)."""
        return dict(self._by_term)

    def drugs_in_class(self, class_name: str) -> tuple[Drug, ...]:
        return self._by_class.get(class_name.removeprefix(CLASS_PREFIX), ())

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(self._by_class)

    def _rule_keys(self, drug: Drug) -> tuple[str, ...]:
        return (drug.name, *(CLASS_PREFIX + cls for cls in drug.classes))

    # -- interactions ------------------------------------------------------------------------

    def interactions_between(self, drug_a: str | Drug, drug_b: str | Drug) -> tuple[Interaction, ...]:
        """Every rule that applies to the pair (by name or class, either order), most severe
        first. Two mentions of the same drug never interact with themselves."""
        first, second = self._resolve(drug_a), self._resolve(drug_b)
        if first is None or second is None or first.name == second.name:
            return ()
        found: dict[str, Interaction] = {}
        for key_a in self._rule_keys(first):
            for key_b in self._rule_keys(second):
                for rule in self._pairs.get(_pair_key(key_a, key_b), ()):
                    found.setdefault(rule.id, rule)
        return tuple(sorted(found.values(), key=lambda rule: -SEVERITY_RANK[rule.severity]))

    def interaction(self, drug_a: str | Drug, drug_b: str | Drug) -> Interaction | None:
        """The most severe rule for the pair (brands and classes resolved, order-free), or None."""
        rules = self.interactions_between(drug_a, drug_b)
        return rules[0] if rules else None

    # -- contraindications -------------------------------------------------------------------

    def contraindications_for(self, drug: str | Drug) -> tuple[Contraindication, ...]:
        """Rules naming the drug itself or one of its classes."""
        resolved = self._resolve(drug)
        if resolved is None:
            return ()
        rules: list[Contraindication] = []
        for key in self._rule_keys(resolved):
            rules.extend(self._contra.get(key, ()))
        return tuple(rules)

    def red_flag(self, flag_id: str) -> RedFlag | None:
        return next((flag for flag in self.red_flags if flag.id == flag_id), None)

    def _resolve(self, drug: str | Drug) -> Drug | None:
        return drug if isinstance(drug, Drug) else self.drug(drug)


def _pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)
