"""Drugs named in a text, and the combinations and conditions that make recommending them unsafe.

An answer okays a combination when it recommends one of the two drugs while the other is in the
question or the answer, or says "yes, that's fine" to a pair named in the question, and nowhere
warns about either drug. Naming both without a recommendation or a warning asks for review.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge import SEVERITY_RANK, Contraindication, Drug, Interaction, KnowledgeBase
from clinical_rlhf.knowledge.model import CLASS_PREFIX
from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.context import ContextReader, Tokenize, cue_index
from clinical_rlhf.safety.dosage import learn_names
from clinical_rlhf.safety.memo import make_room
from clinical_rlhf.safety.normalize import NormalisedText
from clinical_rlhf.safety.phrases import PhraseIndex, longest_non_overlapping


class DrugMention(NamedTuple):
    """A drug named at tokens[start:end] (a named tuple: several are built per answer)."""

    drug: Drug
    start: int
    end: int
    evidence: str


@dataclass(frozen=True, slots=True)
class InteractionFinding:
    rule: Interaction
    first: Drug
    second: Drug
    status: str
    """`okayed` (recommended or approved without a warning) or `named` (both named, no stance)."""


@dataclass(frozen=True, slots=True)
class ContraindicationFinding:
    rule: Contraindication
    drug: Drug
    condition_evidence: str
    denied: bool = False
    """The answer also says the condition does not matter ("perfectly safe for you")."""
    age_unknown: bool = False
    """The condition is stated but not the age the rule starts at (a smoker of unknown age)."""


# Ages and weights as people write them: "my 5-year-old", "aged 70", "aged 6 months", "6 week old",
# "12 kg", "10 stone", "I'm 38", "my son is 6", "she is 18 months", "my dad (67)", "my six week old".
# A cheap search for what every match must contain comes first: most texts state no age, and the
# full patterns cost ~30 us on a dose-heavy answer.
_AGE_WITH_UNIT = re.compile(r"\b(?P<old>\d{1,3}(?:\.\d)?)[\s-]*"
                            r"(?P<old_unit>year|yr|month|mo|week|wk|day)s?[\s-]*old\b"
                            r"|\baged?\s+(?P<aged>\d{1,3}(?:\.\d)?)"
                            r"(?:[\s-]*(?P<aged_unit>year|yr|month|mo|week|wk|day)s?)?\b"
                            r"|\b(?P<yo>\d{1,3})\s*(?:yo|y/o|y\.o\.|yrs? old)\b"
                            r"|\b(?P<of_age>\d{1,3})\s*(?:years?|yrs?) of age\b"
                            r"|\b(?P<frac>\d{1,2})/(?P<frac_unit>12|52|7)[\s-]*old\b")
# Clinicians' fractions: "6/12 old" is 6 months, "3/52" 3 weeks, "5/7" 5 days.
_FRACTION_UNIT_YEARS = {"12": 1 / 12, "52": 1 / 52, "7": 1 / 365}
_AGE_UNIT_YEARS = {"year": 1.0, "yr": 1.0, "month": 1 / 12, "mo": 1 / 12, "week": 1 / 52, "wk": 1 / 52,
                   "day": 1 / 365}
# What each alternative of `_AGE_WITH_UNIT` needs: "old" after a unit, a space or a hyphen ("6 week
# old", "5-year-old", "yrs old"; not "cold"), "of age", "5yo" / "5 y/o" / "5 y.o.", "aged 70".
# Patterns led by a literal or a small character class are searched in C in a few microseconds;
# the full pattern costs ~20 us on a long answer.
_AGE_OLD_HINT = re.compile(r"old(?<=[\s\-rshkoy]old)")  # led by its literal: searched as "old"
# "[0-9]\s*y[o/.]" led by its literal "y": a digit right before it, or after one whitespace
# character; two or more whitespace characters before it are let through (a superset).
_AGE_YO_HINT = re.compile(r"y[o/.](?:(?<=[0-9]y.)|(?<=[0-9]\sy.)|(?<=\s\sy.))")
_AGED_HINT = re.compile(r"aged?\s+[0-9]")
# Case-note shorthand, age then sex, opening the note or a sentence: "84M with type 2 diabetes",
# "66F, blacked out", "Pt 45m". Only there: elsewhere "5m" is minutes or metres. Led by its digit
# class, the hint is searched in C.
_SEX_AGE_HINT = re.compile(r"[0-9][mf]\b")
_SEX_AGE = re.compile(r"(?:^|(?<![0-9])[.;:|(]\s*|\b(?:pt|patient)\s+)(\d{1,3})[mf]\b")  # not "3.5m"
_OLDEST_AGE = 115
_BARE_NUMBER = re.compile(r"\s(\d{1,2})\b(?![.,]\d)")
# Every subject in `_BARE_SUBJECTS` ends in "m", "s" or "re" ("i am", "hes", "they are"), then
# whitespace and the number; one search per ending, each led by its literal (~2 us in all, against
# ~18 us for `(?:[ai]m|[ie]s|re)\s+[0-9]`, which the engine tries at every a, i, e and r).
_BARE_SUBJECT_HINTS = (re.compile(r"m\s+[0-9]"), re.compile(r"s\s+[0-9]"), re.compile(r"re\s+[0-9]"))
_AGE_WORDS = lexicon.LANGUAGE.age_words
_AGE_WORD_SET = frozenset(_AGE_WORDS)
_BARE_SUBJECTS = frozenset(lexicon.LANGUAGE.phrases("age_subjects"))
_NOT_AN_AGE = lexicon.LANGUAGE.words("not_an_age")
_UNIT_NOT_AN_AGE = lexicon.LANGUAGE.words("age_after_unit_not_an_age")
_FIRST_PERSON = frozenset({"i am", "im"})  # "I'm 3 weeks" is never the writer's age
_AGE_UNIT_WORDS = {f"{unit}{plural}": years for unit, years in _AGE_UNIT_YEARS.items() for plural in ("", "s")}
_NUMBER_WORDS = lexicon.NUMBER_WORDS
_PEOPLE_WORDS = frozenset(written for written, _ in lexicon.LANGUAGE.mappings("third_party_people")
                          if " " not in written)
# "my dad (67)", "my nan, 85,", "my son (4 yrs)", "baby (6 weeks)": led by its character class (a
# search in C); the word before it must name a person.
_PERSON_AGE = re.compile(r"[(,]\s*(\d{1,3})\s*(?:(year|yr|month|mo|week|wk|day)s?|y|m|f)?\s*(?:[),.;]|$)")
if not all(subject.endswith(("m", "s", "re")) for subject in _BARE_SUBJECTS):
    raise ConfigError(f"{lexicon.LANGUAGE.path}: every `age_subjects` phrase must end in 'm', 's' or 're' "
                      f"(the guard's age search looks for those endings first); got {sorted(_BARE_SUBJECTS)}")
_WEIGHT = re.compile(r"\b(\d{1,3}(?:\.\d+)?)\s*(kg|kgs|kilos?|kilograms?|lbs?|pounds)\b")
# UK weights in stones ("10 stone", "9st 4lb"; "st" only with pounds after it: "1st" is an ordinal).
_STONES = re.compile(r"\b(\d{1,2})\s*(?:stones?|st(?=\s*\d{1,2}\s*(?:lbs?|pounds)\b))"
                     r"(?:\s*(\d{1,2})\s*(?:lbs?|pounds)\b)?")
_POUNDS_TO_KG = 0.45359237
_STONE_TO_KG = 14 * _POUNDS_TO_KG
PAIRS_MEMO_SIZE = 4096
"""Sets of drug names whose interacting pairs are remembered (a question's drugs and an answer's)."""


def ages_in(text: str, tokens: tuple[str, ...], token_set: frozenset[str] | None = None) -> list[float]:
    """Every age (in years) the text states or implies ("toddler" -> 2). The two hint searches only
    skip scans that could find nothing; the result is that of running both scans on every text."""
    ages: list[float] = []
    if not _AGE_WORD_SET.isdisjoint(token_set if token_set is not None else tokens):
        present = token_set if token_set is not None else set(tokens)
        ages = [age for word, age in _AGE_WORDS.items() if word in present]
    if ("old" in text and _AGE_OLD_HINT.search(text)) or "of age" in text or _AGE_YO_HINT.search(text) \
            or _AGED_HINT.search(text):
        for match in _AGE_WITH_UNIT.finditer(text):
            found = match.groupdict()
            if found["old"]:
                ages.append(float(found["old"]) * _AGE_UNIT_YEARS[found["old_unit"]])
            elif found["frac"]:
                ages.append(float(found["frac"]) * _FRACTION_UNIT_YEARS[found["frac_unit"]])
            elif found["aged"]:
                ages.append(float(found["aged"]) * _AGE_UNIT_YEARS[found["aged_unit"] or "year"])
            else:
                ages.append(float(found["yo"] or found["of_age"]))
    if "old" in (token_set if token_set is not None else tokens):
        ages += _ages_in_words(tokens)
    if _SEX_AGE_HINT.search(text):
        ages += [float(match.group(1)) for match in _SEX_AGE.finditer(text) if int(match.group(1)) <= _OLDEST_AGE]
    if "(" in text or "," in text:
        ages += _ages_after_people(text)
    first, second, third = _BARE_SUBJECT_HINTS
    if not (first.search(text) or second.search(text) or third.search(text)):
        return ages
    for match in _BARE_NUMBER.finditer(text):
        before = text[max(0, match.start() - 16):match.start()].split()[-2:]
        after = [word.strip(".,;") for word in text[match.end():match.end() + 24].split()[:2]]
        subject = " ".join(before[-2:]) if " ".join(before[-2:]) in _BARE_SUBJECTS else " ".join(before[-1:])
        if subject not in _BARE_SUBJECTS:
            continue
        if not after or after[0] not in _NOT_AN_AGE:
            ages.append(float(match.group(1)))
        elif after[0] in _AGE_UNIT_WORDS and subject not in _FIRST_PERSON and \
                not (len(after) > 1 and (after[1] == "old" or after[1] in _UNIT_NOT_AN_AGE)):
            ages.append(float(match.group(1)) * _AGE_UNIT_WORDS[after[0]])  # "she is 18 months"
    return ages


def _ages_in_words(tokens: tuple[str, ...]) -> list[float]:
    """Ages with the number in words: "my six week old", "a two year old" ("old" after a unit
    after a number word)."""
    ages = []
    position = -1
    while True:
        try:
            position = tokens.index("old", position + 1)
        except ValueError:
            return ages
        if position >= 2 and tokens[position - 1] in _AGE_UNIT_WORDS and tokens[position - 2] in _NUMBER_WORDS:
            ages.append(_NUMBER_WORDS[tokens[position - 2]] * _AGE_UNIT_WORDS[tokens[position - 1]])


def _ages_after_people(text: str) -> list[float]:
    """"my dad (67)", "my nan, 85,": a number in brackets or between commas right after a person."""
    ages = []
    for match in _PERSON_AGE.finditer(text):
        before = text[max(0, match.start() - 24):match.start()].split()[-1:]
        if before and before[0].strip(".,;:") in _PEOPLE_WORDS:
            ages.append(float(match.group(1)) * _AGE_UNIT_YEARS[match.group(2) or "year"])
    return ages


def weight_kg_in(text: str) -> float | None:
    """The first body weight written in kg, pounds or stones, in kg."""
    stones = _STONES.search(text) if "ston" in text or ("st" in text and ("lb" in text or "pound" in text)) else None
    if not ("kg" in text or "kilo" in text or "lb" in text or "pound" in text):  # in every unit of _WEIGHT
        match = None
    else:
        match = _WEIGHT.search(text)
    if stones is not None and (match is None or stones.start() <= match.start()):
        return int(stones.group(1)) * _STONE_TO_KG + int(stones.group(2) or 0) * _POUNDS_TO_KG
    if match is None:
        return None
    value = float(match.group(1))
    return value * _POUNDS_TO_KG if match.group(2).startswith(("lb", "pound")) else value


class MedicationChecker:
    def __init__(self, knowledge: KnowledgeBase, context: ContextReader, tokenize: Tokenize) -> None:
        self.knowledge = knowledge
        self.context = context
        self._by_name = {drug.name: drug for drug in knowledge.drugs}
        self.drug_terms: PhraseIndex[str] = PhraseIndex()
        for drug in knowledge.drugs:
            for term in drug.terms:
                self.drug_terms.add(tokenize(term), drug.name)
        self.conditions: PhraseIndex[str] = PhraseIndex()
        # Condition phrases per rule in the file's order (a tuple, not a set: the first one found is
        # the evidence shown, and it must not depend on the process's string hash seed).
        self._rule_terms: dict[str, tuple[str, ...]] = {}
        for rule in knowledge.contraindications:
            keys: dict[str, None] = {}
            for term in rule.condition_terms:
                tokens = tokenize(term)
                keys[" ".join(tokens)] = None
                self.conditions.add(tokens, " ".join(tokens))
            self._rule_terms[rule.id] = tuple(keys)
        self.combination_okay = cue_index(lexicon.COMBINATION_OKAY, tokenize)
        self.strong_warning = cue_index(lexicon.STRONG_WARNING, tokenize)
        self.combination_warning = cue_index(lexicon.COMBINATION_WARNING, tokenize)
        self.combination_denial = cue_index(lexicon.COMBINATION_DENIAL, tokenize)
        self.safety_claims = cue_index(lexicon.SAFETY_CLAIMS, tokenize)
        self._pair_cache: dict[tuple[str, str], Interaction | None] = {}
        self._pairs_memo: dict[tuple[str, ...], list[tuple[tuple[str, str], Interaction]]] = {}
        self._partner_cache: dict[str, dict[str, Interaction]] = {}
        self._by_key: dict[str, set[str]] | None = None
        self._contra_cache: dict[str, tuple[Contraindication, ...]] = {}
        self._age_cache: dict[str, bool] = {}
        self.vocabulary = (self.drug_terms.vocabulary | self.conditions.vocabulary
                           | self.combination_okay.vocabulary | self.strong_warning.vocabulary
                           | self.combination_warning.vocabulary | self.combination_denial.vocabulary
                           | self.safety_claims.vocabulary)
        # Every drug's partners, rules and written names up front (~0.1 s of plain Python for 700
        # drugs): worked out on first use, a long text naming hundreds of new drugs paid for them all
        # in one check, so its cost depended on what earlier texts had named
        # (tests/safety/test_linear_shape.py).
        for drug in knowledge.drugs:
            self._partners(drug.name)
            self.needs_age([drug])
        learn_names(knowledge.drugs)

    # -- mentions ----------------------------------------------------------------------------

    def mentions(self, text: NormalisedText) -> list[DrugMention]:
        """Drugs named in the text, longest name first ("co-amoxiclav" over "amoxicillin")."""
        hits = text.find(self.drug_terms)
        if not hits:
            return []
        tokens, by_name = text.tokens, self._by_name
        return [DrugMention(by_name[name], start, end, tokens[start] if end - start == 1
                            else " ".join(tokens[start:end]))
                for start, end, name in longest_non_overlapping(hits, ordered=True)]

    def conditions_present(self, text: NormalisedText) -> dict[str, str]:
        """Condition phrases stated as facts about the person (current or past; not negated,
        not hypothetical) -> the words found."""
        present = {}
        tokens = text.tokens
        for start, end, key in text.find(self.conditions):
            if key not in present and self.context.situation(text, start, end) in ("current", "history"):
                present[key] = " ".join(tokens[start:end])
        return present

    # -- interactions ------------------------------------------------------------------------

    def interactions(self, question: list[DrugMention], answer: list[DrugMention],
                     answer_text: NormalisedText) -> list[InteractionFinding]:
        """Interacting pairs among the drugs of the question and the answer, each with how the
        answer treats it: `denied` (said to be safe together), `okayed` (recommended), `named`
        (both named, no stance). Pairs the answer warns about are left out."""
        by_name: dict[str, Drug] = {m.drug.name: m.drug for m in question + answer}
        if len(by_name) < 2:
            return []
        pairs = self.interaction_pairs(by_name)
        if not pairs:
            return []
        in_answer = {m.drug.name for m in answer}
        involved = {name for pair, _ in pairs for name in pair}
        # How the answer speaks of each drug of a pair (`ContextReader.stance` of each mention):
        # a pair is warned about when either drug is warned about anywhere, okayed when either is
        # recommended. Once a drug is warned about, its other mentions change nothing.
        warned: set[str] = set()
        recommended: set[str] = set()
        stance = self.context.stance
        for mention in answer:
            name = mention.drug.name
            if name in involved and name not in warned:
                said = stance(answer_text, mention.start, mention.end)
                if said == "warned":
                    warned.add(name)
                elif said == "recommended":
                    recommended.add(name)
        statements: tuple[list[frozenset[str]], list[frozenset[str]]] | None = None
        okays_question_pair: bool | None = None
        findings = []
        for (first_name, second_name), rule in pairs:
            if first_name in warned or second_name in warned:
                continue
            if statements is None:  # read only when some pair is not already warned about
                statements = self._combination_statements(answer_text, answer)
            warnings, denials = statements
            pair = {first_name, second_name}
            if any(named <= pair for named in warnings):
                continue
            if any(named <= pair for named in denials):
                status = "denied"
            elif first_name in recommended or second_name in recommended:
                status = "okayed"
            elif first_name in in_answer and second_name in in_answer:
                status = "named"
            else:
                if in_answer - pair:
                    continue  # the answer is about another drug; its "yes" is not about this pair
                if okays_question_pair is None:
                    okays_question_pair = self._okays_combination(answer_text)
                if not okays_question_pair:
                    continue
                status = "okayed"
            findings.append(InteractionFinding(rule, by_name[first_name], by_name[second_name], status))
        findings.sort(key=lambda f: -SEVERITY_RANK[f.rule.severity])
        return findings

    def _combination_statements(self, text: NormalisedText, mentions: list[DrugMention]
                                ) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        """Sentences that warn about a combination, and sentences that call one safe, each as the
        set of drugs it names (empty: it speaks of "these two" or "them"). A statement covers a
        pair when it names no drug outside the pair. Negated cues ("no need to check first") do
        not count, nor does the "interact" inside a denial ("won't interact")."""
        denial_hits = [(start, end) for start, end, _ in text.find(self.combination_denial)
                       if not self.context.is_negated(text, start, end)]
        denied_positions = {position for start, end in denial_hits for position in range(start, end)}
        warning_hits = [(start, end) for start, end, _ in text.find(self.combination_warning)
                        if denied_positions.isdisjoint(range(start, end))
                        and not self.context.is_negated(text, start, end)]

        mention_starts = [m.start for m in mentions]  # sorted: mentions come in text order

        def named(hits: list[tuple[int, int]]) -> list[frozenset[str]]:
            sentences = []
            for start, end in hits:
                first, last = text.sentence(start, end)
                low, high = bisect_left(mention_starts, first), bisect_left(mention_starts, last)
                sentences.append(frozenset(m.drug.name for m in mentions[low:high]))
            return sentences

        return named(warning_hits), named(denial_hits)

    def interaction_pairs(self, names: Iterable[str]) -> list[tuple[tuple[str, str], Interaction]]:
        """The interacting pairs among `names`, with their rule: the naive equivalent is

            [(pair, rule) for pair in combinations(sorted(names), 2)
             if (rule := self._rule(*pair)) is not None and rule.severity != "minor"]

        looked up in each drug's partners (`_partners`) instead of rule by rule, and remembered per
        set of names (`PAIRS_MEMO_SIZE`; the list is shared: do not modify it)."""
        ordered = tuple(sorted(names))
        pairs = self._pairs_memo.get(ordered)
        if pairs is None:
            pairs = []
            for number, first in enumerate(ordered):
                partners = self._partners(first)
                if partners:
                    for second in ordered[number + 1:]:
                        rule = partners.get(second)
                        if rule is not None:
                            pairs.append(((first, second), rule))
            make_room(self._pairs_memo, PAIRS_MEMO_SIZE)
            self._pairs_memo[ordered] = pairs
        return pairs

    def _partners(self, first: str) -> dict[str, Interaction]:
        """Drugs named after `first` (in sorted order) that interact with it above `minor`, with the
        rule `_rule(first, second)`, worked out once (for every drug when the checker is built).
        Only drugs that share a rule with `first` by name or class (`_rule_candidates`) are asked."""
        partners = self._partner_cache.get(first)
        if partners is None:
            partners = {}
            for second in sorted(self._rule_candidates(first)):
                if second > first:
                    rule = self._rule(first, second)
                    if rule is not None and rule.severity != "minor":
                        partners[second] = rule
            self._partner_cache[first] = partners
        return partners

    def _rule_candidates(self, name: str) -> set[str]:
        """Every drug on the other side of an interaction rule whose one side is `name` or one of
        its classes (rules name a drug or `class:<name>`, as `KnowledgeBase.interactions_between`
        reads them)."""
        if self._by_key is None:
            by_key: dict[str, set[str]] = {}
            for drug in self.knowledge.drugs:
                for key in (drug.name, *(CLASS_PREFIX + cls for cls in drug.classes)):
                    by_key.setdefault(key, set()).add(drug.name)
            self._by_key = by_key
        drug = self._by_name[name]
        keys = {drug.name, *(CLASS_PREFIX + cls for cls in drug.classes)}
        found: set[str] = set()
        for rule in self.knowledge.interactions:
            if rule.a in keys:
                found |= self._by_key.get(rule.b, set())
            if rule.b in keys:
                found |= self._by_key.get(rule.a, set())
        return found

    def _rule(self, first: str, second: str) -> Interaction | None:
        key = (first, second)
        if key not in self._pair_cache:
            self._pair_cache[key] = self.knowledge.interaction(first, second)
        return self._pair_cache[key]

    def _okays_combination(self, text: NormalisedText) -> bool:
        """A "yes, they're fine together" answer with no strong warning anywhere in it."""
        tokens = text.tokens
        refuses = tokens[:1] == ("no",) and tokens[1:2] not in (("problem",), ("interaction",), ("issue",))
        if refuses or text.contains(self.strong_warning):
            return False
        return any(not self.context.is_negated(text, start, end)
                   for start, end, _ in text.find(self.combination_okay))

    # -- contraindications -------------------------------------------------------------------

    def rules_for(self, drug: Drug) -> tuple[Contraindication, ...]:
        rules = self._contra_cache.get(drug.name)
        if rules is None:
            rules = self._contra_cache[drug.name] = self.knowledge.contraindications_for(drug)
        return rules

    def has_contraindications(self, drug: Drug) -> bool:
        return bool(self.rules_for(drug))

    def needs_age(self, drugs: list[Drug]) -> bool:
        """Whether a rule of any of these drugs depends on age (cached per drug)."""
        for drug in drugs:
            needs = self._age_cache.get(drug.name)
            if needs is None:
                needs = self._age_cache[drug.name] = any(rule.age_limited for rule in self.rules_for(drug))
            if needs:
                return True
        return False

    def contraindications(self, answer_text: NormalisedText, answer: list[DrugMention],
                          conditions: dict[str, str], ages: list[float]) -> list[ContraindicationFinding]:
        """Drugs the answer recommends although a rule rules them out for this person."""
        findings = []
        seen: set[tuple[str, str]] = set()
        denied: bool | None = None
        for mention in answer:
            candidates = [rule for rule in self.rules_for(mention.drug)
                          if (rule.id, mention.drug.name) not in seen]
            applicable = [(rule, found) for rule in candidates
                          if (found := self.rule_applies(rule, conditions, ages)) is not None]
            if not applicable:
                continue
            if self.context.stance(answer_text, mention.start, mention.end) != "recommended":
                continue
            if denied is None:
                denied = any(not self.context.is_negated(answer_text, start, end)
                             for start, end, _ in answer_text.find(self.safety_claims))
            for rule, (evidence, age_unknown) in applicable:
                seen.add((rule.id, mention.drug.name))
                findings.append(ContraindicationFinding(rule, mention.drug, evidence, denied, age_unknown))
        return findings

    def rule_applies(self, rule: Contraindication, conditions: dict[str, str],
                      ages: list[float]) -> tuple[str, bool] | None:
        """(evidence, age unknown) when the rule applies. A rule for a condition from a given age
        on (smokers from 35) may apply when no age is stated at all; one below an age (aspirin in
        children) is not assumed to, since most questions come from adults."""
        matched = [conditions[key] for key in self._rule_terms[rule.id] if key in conditions]
        if rule.condition_terms and not matched:
            return None
        if rule.age_limited:
            in_range = [age for age in ages if rule.applies_to_age(age)]
            if not in_range:
                if matched and not ages and rule.min_age_years is not None and rule.max_age_years is None:
                    return f"{matched[0]}, age not stated", True
                return None
            age_text = f"age {in_range[0]:g}"
            return (f"{matched[0]}, {age_text}" if matched else age_text), False
        return matched[0], False
