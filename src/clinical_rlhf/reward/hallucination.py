"""Hallucination checks of one answer against the knowledge base.

Each finding is a `SafetyFlag(category="hallucination", action="escalate")`: it asks for a
clinician's look and costs `reward.hallucination_penalty`, it never vetoes. Subtypes:

- unknown_drug: a word shaped like a drug name (INN/USAN stem) or written with a dose, that the
  knowledge base does not know;
- max_dose_overstated / max_dose_understated: a stated maximum (daily, or single) that contradicts
  the knowledge base's (above it by more than `DOSE_TOLERANCE`, or below a quarter of it);
- dose_exceeds_max / implausible_dose: a stated dose above the maximum single (or daily) dose, or
  below a tenth of the smallest marketed strength (skipped when the guard already flagged a dose);
- interaction_not_in_kb: an interaction asserted between drugs the knowledge base has no rule for;
- interaction_denied: "safe together" said of a pair with a moderate-or-worse rule;
- low_self_consistency: the answer is not supported by other answers sampled for the same prompt
  (mean similarity to them below `uncertainty_estimation.consistency_threshold`).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from clinical_rlhf.knowledge import SEVERITY_RANK
from clinical_rlhf.reward.consistency import support
from clinical_rlhf.reward.drug_mentions import DrugIndex, Mention, amount_spans, stated_doses
from clinical_rlhf.reward.lexicon import LANGUAGE, STOPWORDS, compile_phrases
from clinical_rlhf.reward.text import NEGATORS, Analysed
from clinical_rlhf.safety.dosage import DoseStatement
from clinical_rlhf.safety.verdict import SafetyFlag

DOSE_TOLERANCE = 0.1
"""A stated maximum up to 10% above the knowledge base's is rounding, not a contradiction."""
UNDERSTATED_FRACTION = 0.25
"""A stated maximum below this fraction of the real one is a factual error (e.g. 500 mg/day of
paracetamol), while conservative limits above it (the OTC 1200 mg/day of ibuprofen) are not."""
IMPLAUSIBLE_FRACTION = 0.1
"""A dose below a tenth of the smallest marketed strength is not a real dose of that drug."""

AFTER_CHARS = 30
"""Characters after an amount read for "a day"/"at once" wording, beyond the parser's clause."""
NEGATION_WORDS = 2
"""An interaction cue is denied only by a negator right before it ("does not interact"), not by
one further back ("should not be combined, it increases the risk")."""
# The cue phrase sets are in data/knowledge/language.yaml.
_MAX_CUE = compile_phrases(LANGUAGE.phrases("maximum_cues"))
_DAILY_CUE = re.compile(r"\b(?:a|per|each|every|in a|in one) day\b|\bdaily\b|\b24[\s-]*hours?\b|"
                        r"/\s*(?:day|24\s*h)|\ba 24\b")
_SINGLE_CUE = compile_phrases(LANGUAGE.phrases("single_dose_cues"))
_INTERACTS = compile_phrases(LANGUAGE.phrases("interaction_assertions"))
_NO_INTERACTION = compile_phrases(LANGUAGE.phrases("interaction_denials"))
# Words before a dose that are not a drug name ("take 500 mg", "up to 4 g").
_DOSE_CONTEXT_WORDS = LANGUAGE.words("dose_context_words") | STOPWORDS
_WORD_BEFORE = re.compile(r"(?<![\w-])([a-z]{3,})\s*$")
WORD_BEFORE_CHARS = 64


@dataclass(frozen=True, slots=True)
class HallucinationChecker:
    index: DrugIndex
    consistency_threshold: float = 0.35

    def check(self, response: Analysed, already_flagged_dose: bool = False,
              samples: Sequence[str] | None = None, mentions: list[Mention] | None = None) -> tuple[SafetyFlag, ...]:
        """Every hallucination finding of one answer (`samples`: other answers to the same prompt;
        `mentions`: the drugs it names, from the guard's reading (`drug_mentions.reading_mentions`),
        else found here by the reward's own index)."""
        flags: list[SafetyFlag] = []
        if mentions is None:
            mentions = self.index.mentions(response.normalized)
        flags += self._unknown_drugs(response)
        flags += self._dose_claims(response, mentions, already_flagged_dose)
        if len(mentions) >= 2:
            # Each sentence's mentions and denials by bisection: one pass, however many sentences.
            mention_starts = [m.span[0] for m in mentions]
            denial_starts = [s for s, _ in response.hits(_NO_INTERACTION)]
            for start, end in response.sentences:
                low, high = bisect_left(mention_starts, start), bisect_left(mention_starts, end)
                if high - low >= 2:
                    denied = bisect_left(denial_starts, start)
                    denies = denied < len(denial_starts) and denial_starts[denied] < end
                    flags += self._interaction_claims(response, (start, end), mentions[low:high], denies)
        if samples:
            score = support(response.raw, samples, self.index)
            if score < self.consistency_threshold:
                flags.append(_flag(response, "low_self_consistency", f"support {score:.2f}", None,
                                   "hallucination:self_consistency"))
        return tuple(flags)

    # -- drug names ---------------------------------------------------------------------------

    def _unknown_drugs(self, response: Analysed) -> list[SafetyFlag]:
        seen: dict[str, tuple[int, int]] = dict(self.index.unknown_drug_like(response.normalized))
        text = response.normalized
        for start, _ in amount_spans(text):
            # the word right before the amount, read from a bounded window (a longer "word" is no drug name)
            match = _WORD_BEFORE.search(text, max(0, start - WORD_BEFORE_CHARS), start)
            if match is None:
                continue
            word = match.group(1)
            if (len(word) >= 5 and word not in _DOSE_CONTEXT_WORDS and not self.index.is_known_word(word)
                    and self.index.drug(word) is None and word not in seen):
                seen[word] = match.span(1)
        return [_flag(response, "unknown_drug", word, span, f"hallucination:unknown_drug:{word}")
                for word, span in seen.items()]

    # -- doses --------------------------------------------------------------------------------

    def _dose_claims(self, response: Analysed, mentions: list[Mention],
                     already_flagged_dose: bool) -> list[SafetyFlag]:
        flags = []
        for statement in stated_doses(response.normalized, mentions):
            if statement.per_dose_mg is None:
                continue  # per-kg amounts are the guard's (children's maxima)
            # The parser's clause stops at the next amount-like words ("a single dose"); the words
            # right after the amount still qualify it.
            clause = response.normalized[statement.clause[0]:max(statement.clause[1], statement.span[1] + AFTER_CHARS)]
            subtype = _dose_problem(statement, bool(_MAX_CUE.search(clause)),
                                    statement.doses_per_day is not None or bool(_DAILY_CUE.search(clause)),
                                    bool(_SINGLE_CUE.search(clause)), already_flagged_dose)
            if subtype:
                flags.append(_flag(response, subtype, f"{statement.drug.name} {statement.evidence}",
                                   statement.span, f"hallucination:{subtype}:{statement.drug.name}"))
        return flags

    # -- interactions -------------------------------------------------------------------------

    def _interaction_claims(self, response: Analysed, sentence: tuple[int, int],
                            mentions: list[Mention], denies: bool) -> list[SafetyFlag]:
        """A sentence naming two or more drugs (`denies`: it holds a non-negated "no interaction")."""
        drugs = list({m.drug.name: m.drug for m in mentions}.values())
        if len(drugs) < 2:
            return []
        start, end = sentence
        asserts = False
        for match in _INTERACTS.finditer(response.normalized, start, end):
            if NEGATORS.intersection(response.clause_before(match.start())[-NEGATION_WORDS:]):
                denies = True
            else:
                asserts = True
        kb = self.index.kb
        pairs = [(a, b) for i, a in enumerate(drugs) for b in drugs[i + 1:]]
        rules = [kb.interaction(a, b) for a, b in pairs]
        pair_text = "+".join(sorted(d.name for d in drugs))
        if denies and len(drugs) == 2 and rules[0] is not None and SEVERITY_RANK[rules[0].severity] >= 1:
            return [_flag(response, "interaction_denied", response.normalized[start:end].strip(), None,
                          f"interaction:{rules[0].id}")]
        if asserts and not denies and all(rule is None for rule in rules):
            return [_flag(response, "interaction_not_in_kb", response.normalized[start:end].strip(), None,
                          f"hallucination:interaction:{pair_text}")]
        return []


def _dose_problem(statement: DoseStatement, is_max: bool, is_daily: bool, is_single: bool,
                  already_flagged_dose: bool) -> str:
    """The subtype of what is wrong with one stated amount, or "" when nothing is."""
    drug, amount = statement.drug, statement.per_dose_mg or 0.0
    if is_max:
        # A stated maximum is read as per dose or per day when its wording says so; otherwise it is
        # wrong only if it is wrong both ways (above the daily maximum, below a quarter of the single).
        single, daily_max = drug.max_single_mg or drug.max_daily_mg, drug.max_daily_mg or drug.max_single_mg
        if single is None or daily_max is None:
            return ""
        upper = single if is_single else max(daily_max, drug.highest_label_daily_mg or 0.0)
        lower = daily_max if is_daily else single
        if amount > upper * (1 + DOSE_TOLERANCE):
            return "max_dose_overstated"
        return "max_dose_understated" if amount < lower * UNDERSTATED_FRACTION else ""
    if already_flagged_dose:
        return ""
    daily = statement.daily_mg or 0.0
    if (drug.max_single_mg and amount > drug.max_single_mg * (1 + DOSE_TOLERANCE)) or \
            (drug.max_daily_mg and max(amount, daily) > drug.max_daily_mg * (1 + DOSE_TOLERANCE)):
        return "dose_exceeds_max"
    if drug.common_strengths_mg and amount < min(drug.common_strengths_mg) * IMPLAUSIBLE_FRACTION:
        return "implausible_dose"
    return ""


def _flag(response: Analysed, subtype: str, evidence: str, span: tuple[int, int] | None,
          rule_id: str) -> SafetyFlag:
    if span is not None:
        # Normalising only shortens runs of whitespace, so the evidence lies at or after its
        # normalised offset in the original: searching from there finds it (and the right one).
        evidence_text = response.normalized[span[0]:span[1]]
        found = response.lowered.find(evidence_text, span[0])
        span = (found, found + len(evidence_text)) if found >= 0 else None
    return SafetyFlag(category="hallucination", subtype=subtype, severity="moderate", evidence=evidence,
                      span=span, source="response", rule_id=rule_id, action="escalate")
