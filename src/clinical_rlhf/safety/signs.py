"""Clinician language -> triage reasons: single values that are emergencies on their own, early-warning
scores (NEWS2, qSOFA, NICE NG51 sepsis criteria, NICE NG143 paediatric thresholds by age), examination
findings and published decision rules (Wells, Ottawa, HEART, CRB65, Centor,
FeverPAIN).

    reader = ClinicalSignsReader(knowledge, context, tokenize)
    reader.reasons(text, ages)   # text: NormalisedText; ages: years the question states
    # -> [TriageReason(kind="score", id="news2", urgency="emergency", evidence="rr 28 ...",
    #                  detail="NEWS2 8: respiratory rate 28 (3), ...", source="Royal College of Physicians ...")]

Values come from `observations.py`; findings, rule elements and contexts (infection, a hypercapnic
target, reduced consciousness) are phrases matched on the text's tokens. A negated or past mention
does not count ("no neck stiffness", "had meningitis as a child", "BP was 80/50 last year"): each is
read by the guard's `ContextReader`, as red flags are. Thresholds, bands and phrases are data
(`data/knowledge/clinical_signs.yaml`); docs/clinical_signs.md has the tables.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from clinical_rlhf.knowledge import KnowledgeBase
from clinical_rlhf.knowledge.signs import (
    ClinicalSigns,
    DecisionRule,
    Finding,
    RuleElement,
    Threshold,
    load_clinical_signs,
)
from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.context import ContextReader, Tokenize
from clinical_rlhf.safety.memo import make_room
from clinical_rlhf.safety.normalize import NormalisedText
from clinical_rlhf.safety.observations import Observation, ObservationReader
from clinical_rlhf.safety.phrases import PhraseIndex
from clinical_rlhf.safety.triage import URGENCY_RANK, TriageReason

AGES_REMEMBERED = 512
"""Distinct stated ages whose applicable thresholds are kept (a few hundred bytes each)."""


@dataclass
class _Reading:
    """What one text states, gathered once and shared by every rule."""

    values: dict[str, list[Observation]] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)
    """Context phrase set -> the words that stated it (current mentions only)."""
    phrases: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Rule or finding phrase -> (situation, words) of its first mention."""
    age: float | None = None

    def has(self, context: str) -> bool:
        return context in self.terms


class ClinicalSignsReader:
    def __init__(self, knowledge: KnowledgeBase, context: ContextReader, tokenize: Tokenize) -> None:
        self.signs: ClinicalSigns = load_clinical_signs(knowledge.directory)
        self.context = context
        self.observations = ObservationReader(self.signs)
        self.terms: PhraseIndex[str] = PhraseIndex()
        for name, phrases in self.signs.terms.items():
            if name not in ("on_oxygen", "on_air"):  # read next to an SpO2 value, not as phrases
                for phrase in phrases:
                    self.terms.add(tokenize(phrase), name)
        # Every finding and rule phrase once, its payload the phrase itself: a reading records each
        # phrase's situation, and findings and rule elements look their phrases up in it.
        self.phrases: PhraseIndex[str] = PhraseIndex()
        self._keys: dict[str, str] = {}
        for phrase in self._all_phrases():
            tokens = tokenize(phrase)
            if tokens:
                self._keys[phrase] = " ".join(tokens)
                self.phrases.add(tokens, self._keys[phrase])
        # What each matched phrase can set off, so that a text is judged only by the rules its
        # values and phrases touch, not by a walk over every rule.
        self._findings_of: dict[str, list[Finding]] = {}
        for finding in self.signs.findings:
            for phrase in finding.phrases:
                self._findings_of.setdefault(self._keys.get(phrase, ""), []).append(finding)
        self._rules_of: dict[str, list[DecisionRule]] = {}
        for rule in self.signs.rules:
            for phrase in rule.applies_when:
                self._rules_of.setdefault(self._keys.get(phrase, ""), []).append(rule)
        self._key_sets: dict[int, frozenset[str]] = {}
        """id of a phrase tuple of the data (kept alive by `signs`) -> the keys of its phrases."""
        self.thresholds = {threshold.id: threshold for threshold in self.signs.thresholds}
        self._by_age: dict[float | None, dict[str, list[Threshold]]] = {}
        self._thresholds_of: dict[str, list[Threshold]] = {}
        for threshold in self.signs.thresholds:
            self._thresholds_of.setdefault(threshold.observation, []).append(threshold)
        self.vocabulary = self.terms.vocabulary | self.phrases.vocabulary
        """Words the normaliser must know to decode them from leetspeak or spaced letters."""

    def _all_phrases(self) -> Iterable[str]:
        for finding in self.signs.findings:
            yield from finding.phrases
            yield from finding.requires_any
        for rule in self.signs.rules:
            yield from rule.applies_when
            for element in rule.elements:
                yield from element.phrases
                yield from element.absent_phrases

    # -- public --------------------------------------------------------------------------------

    def reasons(self, text: NormalisedText, ages: Iterable[float] = ()) -> list[TriageReason]:
        """The triage reasons the text's values, scores, findings and decision rules give."""
        reading = self._read(text, ages)
        reasons = self._threshold_reasons(reading) if reading.values else []
        reasons += [TriageReason("observation", f"acvpu_{level.level.lower()}", level.urgency,
                                 reading.terms[level.terms], f"ACVPU {level.level}", level.source)
                    for level in self.signs.consciousness if level.terms in reading.terms]
        if reading.values or reading.terms:
            reasons += self._score_reasons(reading, reasons)
        if reading.phrases:
            reasons += self._finding_reasons(reading)
            rules = {rule.id: rule for phrase, (situation, _) in reading.phrases.items() if situation == "current"
                     for rule in self._rules_of.get(phrase, ())}
            reasons += [reason for rule in self.signs.rules if rule.id in rules
                        if (reason := self._rule_reason(rule, reading)) is not None]
        return reasons

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, text: NormalisedText, ages: Iterable[float]) -> _Reading:
        reading = _Reading(age=min(ages, default=None))
        values = self.observations.read(text.text, text.token_set)
        if values:
            offsets = _token_offsets(text)
            for value in values:
                if not self._value_is_current(text, offsets, value):
                    continue
                reading.values.setdefault(value.kind, []).append(value)
        for start, end, name in text.find(self.terms):
            if name in reading.terms:
                continue
            situation = self.context.situation(text, start, end)
            # A hypercapnic target is a standing fact: "known CO2 retainer" still holds today.
            if situation == "current" or (name == "hypercapnic_target" and situation != "negated"):
                reading.terms.setdefault(name, " ".join(text.tokens[start:end]))
        for start, end, phrase in text.find(self.phrases):
            known = reading.phrases.get(phrase)
            if known is not None and known[0] == "current":
                continue  # a repeated phrase is read once it is known to be current
            situation = self.context.situation(text, start, end)
            if known is None or situation == "current":
                reading.phrases[phrase] = (situation, " ".join(text.tokens[start:end]))
        fever = [v for v in reading.values.get("temperature", ()) if v.value >= 38]
        if fever and "infection" not in reading.terms:
            reading.terms["infection"] = fever[0].written  # a fever is a sign of infection (NICE NG51 1.1)
        gcs = [v for v in reading.values.get("gcs", ()) if v.value < 15]
        stated = [level for level in self.signs.consciousness if level.terms in reading.terms]
        if gcs or stated:
            reading.terms["reduced_consciousness"] = gcs[0].written if gcs else reading.terms[stated[0].terms]
        return reading

    def _value_is_current(self, text: NormalisedText, offsets: list[int], value: Observation) -> bool:
        """A value read now: not negated, not past ("BP was 80/50 last year"). A negation reaches a
        value only inside its clause: in "no cough, temp 38.5" the temperature stands. Hypothetical
        only when a cue comes before it: the cues after a mention include "rate", which in a
        clinical note is the next value's label ("HR 124, resp rate 30"), not a generic statement."""
        start, end = bisect_left(offsets, value.start), bisect_left(offsets, value.end)
        if start >= end:
            return True
        if self.context.is_negated(text, start, end, within_clause=True):
            return False
        situation = self.context.situation(text, start, end)
        if situation == "negated":
            return True  # negated only from an earlier clause
        if situation == "hypothetical":
            first, _ = text.sentence(start, end)
            return not text.contains(self.context.hypothetical_before, max(first, start - lexicon.HYPOTHETICAL_REACH),
                                     start)
        return situation == "current"

    # -- single values ---------------------------------------------------------------------------

    def _threshold_reasons(self, reading: _Reading) -> list[TriageReason]:
        reasons = []
        applicable = self._for_age(reading.age)
        for threshold in (t for kind in reading.values for t in applicable.get(kind, ())):
            met = self._met(threshold, reading)
            if met is None:
                continue
            name = self.signs.observations.get(threshold.observation)
            label = name.name if name else threshold.observation
            detail = f"{label} {_shown(met)} ({threshold.bounds.describe()})"
            if threshold.also:
                other = _first(reading.values.get(threshold.also[0], ()), threshold.also[1].holds)
                detail += f" with {threshold.also[0]} {_shown(other)}"
            reasons.append(TriageReason("observation", threshold.id, threshold.urgency, met.written, detail,
                                        threshold.source))
        # A value that meets an emergency rule does not also need the urgent rule for the same
        # observation ("BM 2.1 and drowsy" is severe hypoglycaemia, not also "hypoglycaemia").
        most = {}
        for reason, threshold in zip(reasons, (self.thresholds[r.id] for r in reasons)):
            rank = URGENCY_RANK[reason.urgency]
            most[threshold.observation] = max(most.get(threshold.observation, rank), rank)
        return [reason for reason in reasons
                if URGENCY_RANK[reason.urgency] == most[self.thresholds[reason.id].observation]]

    def _for_age(self, age: float | None) -> dict[str, list[Threshold]]:
        """Observation -> the thresholds for this age, worked out once per age stated."""
        found = self._by_age.get(age)
        if found is None:
            found = {kind: [t for t in thresholds if t.applies_to_age(age)]
                     for kind, thresholds in self._thresholds_of.items()}
            make_room(self._by_age, AGES_REMEMBERED)
            self._by_age[age] = found
        return found

    def _met(self, threshold: Threshold, reading: _Reading) -> Observation | None:
        """The first value that meets the threshold (for the reading's age) in its contexts; None if none."""
        if any(not reading.has(context) for context in threshold.when) or any(reading.has(c) for c in threshold.unless):
            return None
        if threshold.also and _first(reading.values.get(threshold.also[0], ()), threshold.also[1].holds) is None:
            return None
        return _first(reading.values.get(threshold.observation, ()), threshold.bounds.holds)

    # -- scores ----------------------------------------------------------------------------------

    def _score_reasons(self, reading: _Reading, single: list[TriageReason]) -> list[TriageReason]:
        reasons = []
        news2 = self._news2(reading)
        if news2 is not None:
            reasons.append(news2)
        qsofa = self._qsofa(reading)
        if qsofa is not None:
            reasons.append(qsofa)
        sepsis = self._sepsis(reading, single)
        if sepsis is not None:
            reasons.append(sepsis)
        return reasons

    def _news2(self, reading: _Reading) -> TriageReason | None:
        """NEWS2 from the parameters given; those not given score 0 and are named in `detail`."""
        rules = self.signs.news2
        if reading.age is not None and reading.age < rules.min_age:
            return None
        scored: list[tuple[str, str, int, str]] = []  # (parameter, value shown, points, evidence)
        missing = []
        scale_2 = reading.has("hypercapnic_target")
        spo2_values = reading.values.get("spo2", [])
        on_oxygen = any(value.on_oxygen for value in spo2_values)
        for parameter, kind in (("respiratory rate", "respiratory_rate"), ("SpO2", "spo2"),
                                ("systolic BP", "systolic"), ("pulse", "heart_rate"), ("temperature", "temperature")):
            values = reading.values.get(kind)
            if not values:
                missing.append(parameter)
                continue
            bands = (("spo2_scale_2_oxygen" if on_oxygen else "spo2_scale_2_air") if scale_2 else "spo2_scale_1") \
                if kind == "spo2" else kind
            points, worst = max(((_band_points(rules.parameters[bands], v.value), v) for v in values),
                                key=lambda pair: pair[0])
            scored.append((parameter + (" (scale 2)" if kind == "spo2" and scale_2 else ""), _shown(worst),
                           points, worst.written))
        if on_oxygen:
            evidence = next(v.written for v in spo2_values if v.on_oxygen)
            scored.append(("on oxygen", "yes", rules.oxygen_points, evidence))
        elif any(value.on_oxygen is False for value in spo2_values):
            scored.append(("on oxygen", "no (air)", 0, ""))
        else:
            missing.append("air or oxygen (air assumed)")
        consciousness = self._consciousness(reading)
        if consciousness is not None:
            scored.append(("consciousness", consciousness[0], rules.consciousness_points, consciousness[1]))
        else:
            missing.append("consciousness (alert assumed)")
        if not scored:
            return None
        total = sum(points for _, _, points, _ in scored)
        band = next((b for b in rules.bands if total >= b.at_least), None)
        if band is None and any(points >= 3 for _, _, points, _ in scored):
            band = rules.single_parameter_3
        if band is None:
            return None  # a low score adds nothing to the default routine care
        detail = (f"NEWS2 {total} ({band.label}): "
                  + ", ".join(f"{name} {shown} ({points})" for name, shown, points, _ in scored)
                  + (f"; not stated, scored 0: {', '.join(missing)}" if missing else ""))
        evidence = "; ".join(dict.fromkeys(words for _, _, points, words in scored if words and points))
        return TriageReason("score", "news2", band.urgency, evidence, detail, rules.source)

    def _consciousness(self, reading: _Reading) -> tuple[str, str] | None:
        """(ACVPU level or GCS shown, evidence) when consciousness is stated altered."""
        gcs = [v for v in reading.values.get("gcs", ()) if v.value < 15]
        if gcs:
            return f"GCS {gcs[0].value:g}", gcs[0].written
        for level in reversed(self.signs.consciousness):  # the most reduced level stated
            if level.terms in reading.terms:
                return level.level, reading.terms[level.terms]
        return None

    def _qsofa(self, reading: _Reading) -> TriageReason | None:
        """qSOFA (Sepsis-3): 2 or more of 3 with a suspected infection asks for emergency care."""
        rules = self.signs.qsofa
        if not reading.has("infection"):
            return None
        met = []
        rr = _first(reading.values.get("respiratory_rate", ()), lambda v: v >= rules.respiratory_rate_at_least)
        if rr is not None:
            met.append((f"respiratory rate {rr.value:g}", rr.written))
        sbp = _first(reading.values.get("systolic", ()), lambda v: v <= rules.systolic_at_most)
        if sbp is not None:
            met.append((f"systolic {sbp.value:g}", sbp.written))
        consciousness = self._consciousness(reading)
        if consciousness is not None:
            met.append((f"altered mentation ({consciousness[0]})", consciousness[1]))
        if len(met) < rules.positive_at_least:
            return None
        detail = (f"qSOFA {len(met)}/3 with suspected infection ({reading.terms['infection']}): "
                  + ", ".join(shown for shown, _ in met))
        return TriageReason("score", "qsofa", rules.urgency, "; ".join(words for _, words in met), detail, rules.source)

    def _sepsis(self, reading: _Reading, single: list[TriageReason]) -> TriageReason | None:
        """NICE NG51: a suspected infection with any high-risk criterion asks for emergency care."""
        rules = self.signs.sepsis
        if not reading.has("infection"):
            return None
        criteria = [reason for reason in single if reason.id in rules.high_risk_thresholds]
        criteria += [TriageReason("finding", f.id, f.urgency, words, f.name) for f, words in self._findings(reading)
                     if f.id in rules.high_risk_findings]
        if not criteria:
            return None
        detail = (f"suspected infection ({reading.terms['infection']}) with NG51 high-risk criteria: "
                  + "; ".join(reason.detail or reason.id for reason in criteria))
        return TriageReason("score", "ng51_sepsis_high_risk", "emergency",
                            "; ".join(dict.fromkeys(reason.evidence for reason in criteria)), detail, rules.source)

    # -- findings --------------------------------------------------------------------------------

    def _findings(self, reading: _Reading):
        """(finding, words) for each finding stated now, with its required context."""
        found: dict[str, tuple[Finding, str]] = {}
        for phrase, (situation, words) in reading.phrases.items():
            if situation == "current":
                for finding in self._findings_of.get(phrase, ()):
                    found.setdefault(finding.id, (finding, words))
        for finding, words in found.values():
            if finding.requires_any and self._current_phrase(reading, finding.requires_any) is None:
                continue
            if any(not reading.has(context) for context in finding.when):
                continue
            yield finding, words

    def _finding_reasons(self, reading: _Reading) -> list[TriageReason]:
        return [TriageReason("finding", finding.id, finding.urgency, words, finding.name, finding.source)
                for finding, words in self._findings(reading)]

    def _current_phrase(self, reading: _Reading, phrases: tuple[str, ...], history: bool = False) -> str | None:
        """The words of the first of `phrases` the text states now (or in the past, with `history`)."""
        allowed = ("current", "history") if history else ("current",)
        return self._stated(reading, phrases, allowed)

    def _negated_phrase(self, reading: _Reading, phrases: tuple[str, ...]) -> str | None:
        """The words of the first of `phrases` the text states absent ("no cough")."""
        return self._stated(reading, phrases, ("negated",))

    def _stated(self, reading: _Reading, phrases: tuple[str, ...], situations: tuple[str, ...]) -> str | None:
        """A walk over the few phrases the text holds, not over a rule's long phrase list."""
        keys = self._key_set(phrases)
        for key, (situation, words) in reading.phrases.items():
            if situation in situations and key in keys:
                return words
        return None

    def _key_set(self, phrases: tuple[str, ...]) -> frozenset[str]:
        keys = self._key_sets.get(id(phrases))
        if keys is None:
            keys = self._key_sets[id(phrases)] = frozenset(self._keys.get(phrase, "") for phrase in phrases)
        return keys

    # -- decision rules --------------------------------------------------------------------------

    def _rule_reason(self, rule: DecisionRule, reading: _Reading) -> TriageReason | None:
        """Score a rule from the elements the text states; elements it does not state score 0 and
        are named in `detail`. Scored only for its presentation and with `min_elements` stated."""
        presentation = self._current_phrase(reading, rule.applies_when)
        if presentation is None:
            return None
        by_slot: dict[str, tuple[float, str, str]] = {}
        unstated, stated = [], 0
        for element in rule.elements:
            points, shown, words = self._element(element, reading)
            if shown is None:
                unstated.append(element.id)
                continue
            stated += 1
            slot = element.slot or element.id
            if slot not in by_slot or points > by_slot[slot][0]:
                by_slot[slot] = (points, f"{element.id} {points:g}{shown}", words)
        if stated < rule.min_elements:
            return None
        score = sum(points for points, _, _ in by_slot.values())
        band = rule.band(score)
        if band is None:
            return None
        detail = (f"{rule.name} {score:g} ({band.label}): " + ", ".join(shown for _, shown, _ in by_slot.values())
                  + (f"; not stated, scored 0: {', '.join(unstated)}" if unstated else ""))
        evidence = "; ".join(dict.fromkeys([presentation] + [w for p, _, w in by_slot.values() if w and p]))
        return TriageReason("decision_rule", rule.id, band.urgency, evidence, detail, rule.source)

    def _element(self, element: RuleElement, reading: _Reading) -> tuple[float, str | None, str]:
        """(points, how it was stated or None when it was not, evidence words)."""
        if element.count_bands:
            allowed = ("current", "history") if element.history else ("current",)
            keys = self._key_set(element.phrases)
            present = list(dict.fromkeys(words for key, (situation, words) in reading.phrases.items()
                                         if key in keys and situation in allowed))
            if not present:
                return 0.0, None if self._negated_phrase(reading, element.phrases) is None else " (stated absent)", ""
            points = max((p for n, p in element.count_bands if len(present) >= n), default=0.0)
            return points, f" ({len(present)}: {', '.join(present)})", present[0]
        if element.ages:
            if reading.age is None:
                return 0.0, None, ""
            points = max((p for at_least, p in element.ages if reading.age >= at_least), default=0.0)
            return points, f" (age {reading.age:g})", ""
        if element.observation:
            value = _first(reading.values.get(element.observation, ()), element.bounds.holds)
            if value is not None:
                return element.points, f" ({_shown(value)})", value.written
        if element.phrases:
            words = self._current_phrase(reading, element.phrases, element.history)
            if words is not None:
                return element.points, "", words
            if self._negated_phrase(reading, element.phrases) is not None:
                return 0.0, " (stated absent)", ""
        if element.absent_phrases:
            if self._current_phrase(reading, element.absent_phrases) is not None:
                return 0.0, " (present)", ""
            words = self._negated_phrase(reading, element.absent_phrases)
            if words is not None:
                return element.points, f" ({words})", words
        if element.observation and reading.values.get(element.observation):
            return 0.0, f" ({_shown(reading.values[element.observation][0])})", ""
        return 0.0, None, ""


def _band_points(bands: tuple[tuple[float, int], ...], value: float) -> int:
    """NEWS2 points: the first band whose upper bound the value does not exceed."""
    for upper, points in bands:
        if value <= upper:
            return points
    return bands[-1][1]


def _first(values: Iterable[Observation], holds) -> Observation | None:
    return next((value for value in values if holds(value.value)), None)


def _shown(value: Observation | None) -> str:
    if value is None:
        return ""
    return f"{value.value:g}" + (f" [{value.detail}]" if value.detail else "")


def _token_offsets(text: NormalisedText) -> list[int]:
    """The character offset in `text.text` where each of `text.tokens` starts (the reading's offset
    map, `NormalisedText.text_spans`), so that a value read from the characters can be placed among
    the tokens for its context, obfuscated text included."""
    return [start for start, _ in text.text_spans]
