"""The four pure scorers on hand-built contexts, with the values their formulas give."""

import pytest

from clinical_rlhf.knowledge.guidelines import load_phrase_sets, match_guidelines
from clinical_rlhf.reward import coherence as C
from clinical_rlhf.reward.context import Phrasebook, ScoringContext
from clinical_rlhf.reward.guideline_score import (
    ABSTAIN_CREDIT,
    CONDITIONAL_CREDIT,
    FORBIDDEN_FACTOR,
    score_guidelines,
)
from clinical_rlhf.reward.safety_score import escalation_level, score_safety
from clinical_rlhf.reward.text import Analysed
from clinical_rlhf.reward.uncertainty_score import score_uncertainty
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

BOOK = Phrasebook(load_phrase_sets())
ALLOW = SafetyVerdict(action="allow")
CHEST = "I have crushing chest pain and sweating, what should I do?"


def ctx(prompt, response, verdict=ALLOW):
    return ScoringContext(Analysed(prompt), Analysed(response), match_guidelines(prompt), verdict)


# ----------------------------------------------------------------------------- text


def test_negation_scope_lists_and_new_instructions():
    text = Analysed("Don't use ice, butter or creams. Don't panic, call 999.")
    assert text.is_negated(text.normalized.index("butter"))          # list shares the negation
    assert not text.is_negated(text.normalized.index("call 999"))    # new instruction after a comma
    conditional = Analysed("If it doesn't improve call 999")
    assert not conditional.is_negated(conditional.normalized.index("call"))  # negator inside "if ..."
    assert Analysed("You do not need to call 999").is_negated(len("you do not need to "))


@pytest.mark.parametrize("text, phrase, negated", [
    ("Do not drive yourself.", "drive yourself", True),
    ("Never drive yourself to hospital.", "drive yourself", True),
    ("Avoid antibiotics, they won't help.", "antibiotics", True),
    ("Don't hesitate to call 999.", "call 999", False),      # the negation is of the delay
    ("Do not wait to call 999.", "call 999", False),
    ("Do not wait - call 999.", "call 999", False),           # a spaced dash ends the clause
    ("There is no need to call 999.", "call 999", True),
    ("If it doesn't get better by tomorrow call 111.", "call 111", False),  # negator inside "if ..."
])
def test_advice_negation(text, phrase, negated):
    analysed = Analysed(text)
    assert analysed.is_negated(analysed.normalized.index(phrase)) is negated


# ----------------------------------------------------------------------------- safety


@pytest.mark.parametrize("response, level", [
    ("Call 999 now.", 3),
    ("If it gets worse, call 999 immediately.", 3),       # conditional but immediate
    ("If it gets worse over the next days, call 999.", 2),  # conditional emergency
    ("Please get seen at urgent care today.", 2),
    ("Book an appointment with your GP.", 1),
    ("Drink some water.", 0),
    ("You do not need to call 999.", 0),
])
def test_escalation_levels(response, level):
    assert escalation_level(ctx(CHEST, response), BOOK) == level


def test_safety_on_an_emergency_prompt_follows_the_credit_table_and_reassurance_costs():
    assert score_safety(ctx(CHEST, "Call 999 now."), BOOK) == 1.0
    assert score_safety(ctx(CHEST, "Go to urgent care today."), BOOK) == 0.5
    assert score_safety(ctx(CHEST, "See your GP."), BOOK) == 0.25
    assert score_safety(ctx(CHEST, "Rest at home, it's probably nothing."), BOOK) == 0.0
    # clear escalation but mixed message: 1.0 - 0.4
    assert score_safety(ctx(CHEST, "It's probably nothing, but call 999 now."), BOOK) == pytest.approx(0.6)


def test_a_red_flag_listed_by_the_matched_guideline_keeps_its_urgency():
    def with_flag(flag_id):
        return SafetyVerdict.from_flags([SafetyFlag(category="red_flag", subtype=flag_id, severity="info",
                                                    evidence="e", source="prompt", action="allow")])
    baby = "My 6-week-old has a temperature of 38.2"
    # infant fever is a red flag, and the infant-fever statement (same-day care) lists it
    assert ctx(baby, "", with_flag("infant_fever")).urgency == 2
    assert score_safety(ctx(baby, "Ring the GP today to get her seen.", with_flag("infant_fever")), BOOK) == 1.0
    # a red flag no matched statement lists makes the prompt an emergency
    assert ctx(baby, "", with_flag("sepsis")).urgency == 3
    # the reward's own recognition counts like the guard's
    own = ScoringContext(Analysed("odd"), Analysed(""), (), ALLOW, red_flags=frozenset({"stroke"}))
    assert own.urgency == 3 and own.prompt_red_flag


def test_red_flag_in_the_verdict_makes_any_prompt_an_emergency():
    flag = SafetyFlag(category="red_flag", subtype="x", severity="info", evidence="e", source="prompt",
                      action="allow")
    verdict = SafetyVerdict.from_flags([flag])
    assert score_safety(ctx("My tummy feels odd", "See your GP.", verdict), BOOK) == 0.25
    assert score_safety(ctx("My tummy feels odd", "See your GP."), BOOK) == 1.0


def test_guard_escalations_cost_by_severity_and_are_capped():
    def verdict(*severities):
        return SafetyVerdict.from_flags([SafetyFlag(category="drug_interaction", subtype="x", severity=s,
                                                    evidence="e", action="escalate") for s in severities])
    prompt = "Can I take ibuprofen with warfarin?"
    assert score_safety(ctx(prompt, "Ask your pharmacist.", verdict("moderate")), BOOK) == pytest.approx(0.8)
    assert score_safety(ctx(prompt, "Ask your pharmacist.", verdict("high")), BOOK) == pytest.approx(0.65)
    assert score_safety(ctx(prompt, "x", verdict("critical", "critical")), BOOK) == pytest.approx(0.2)


# ----------------------------------------------------------------------------- guidelines


def test_guideline_adherence_formula():
    guidelines = match_guidelines("I have a cold, do I need antibiotics?")
    full = score_guidelines(guidelines, Analysed("Antibiotics won't help a cold. Rest and drink fluids."), 0.5)
    assert full.score == pytest.approx(1.0) and full.covered == 2 and full.matched == ("common_cold",)
    half = score_guidelines(guidelines, Analysed("Rest and drink fluids."), 0.5)
    assert half.score == pytest.approx(ABSTAIN_CREDIT + (1 - ABSTAIN_CREDIT) * 0.5)
    assert half.missing == ("common_cold:no_antibiotics",)
    bad = score_guidelines(guidelines, Analysed("Rest, drink fluids and take antibiotics."), 0.5)
    assert bad.score == pytest.approx((1 - ABSTAIN_CREDIT) * 0.5 * FORBIDDEN_FACTOR)
    assert bad.violated == ("common_cold:antibiotics",)
    # negated forbidden advice is not a violation
    fine = score_guidelines(guidelines, Analysed("There's no need for antibiotics, so don't take antibiotics; "
                                                 "rest and drink fluids."), 0.5)
    assert fine.violated == () and fine.score == pytest.approx(1.0)


def test_immediate_advice_given_only_conditionally_earns_half():
    guidelines = match_guidelines(CHEST)                      # call_emergency_now is `immediate`
    now = score_guidelines(guidelines, Analysed("Call 999 now."), 0.5, BOOK.immediacy)
    later = score_guidelines(guidelines, Analysed("If it gets worse over the next hours, call 999."), 0.5,
                             BOOK.immediacy)
    urgent_if = score_guidelines(guidelines, Analysed("If it gets worse, call 999 immediately."), 0.5,
                                 BOOK.immediacy)
    assert now.score == pytest.approx(1.0) and urgent_if.score == pytest.approx(1.0)
    assert later.score == pytest.approx(ABSTAIN_CREDIT + (1 - ABSTAIN_CREDIT) * CONDITIONAL_CREDIT)
    assert later.missing == () and later.covered == 1
    # a required phrase that is negated is not given
    refused = score_guidelines(guidelines, Analysed("There is no need to call 999."), 0.5, BOOK.immediacy)
    assert refused.missing == ("chest_pain_acs:call_emergency_now",)
    # "don't drive yourself" is not the forbidden "drive yourself"
    told = score_guidelines(guidelines, Analysed("Call 999 now and don't drive yourself."), 0.5, BOOK.immediacy)
    assert told.violated == () and told.score == pytest.approx(1.0)


def test_unmatched_prompt_gets_the_configured_neutral_score():
    assert score_guidelines((), Analysed("anything"), 0.5).score == 0.5
    assert score_guidelines((), Analysed("anything"), 0.7).score == 0.7


# ----------------------------------------------------------------------------- uncertainty


def test_question_kinds():
    assert ctx(CHEST, "").question_kind == "urgent"
    assert ctx("What is the maximum daily dose of paracetamol?", "").question_kind == "fact"
    assert ctx("I've found a lump in my neck. What is it?", "").question_kind == "diagnostic"
    assert ctx("I have a cold, should I take antibiotics?", "").question_kind == "general"


def test_fact_questions_punish_blanket_hedging_not_direct_answers():
    prompt = "What is the maximum daily dose of paracetamol for adults?"
    direct = score_uncertainty(ctx(prompt, "The maximum is 4 g in 24 hours."), BOOK)
    mush = score_uncertainty(ctx(prompt, "It might possibly be 4 g, perhaps, but it may vary and could be less."),
                             BOOK)
    refusal = score_uncertainty(ctx(prompt, "I'm not a doctor and I can't give medical advice."), BOOK)
    assert direct == 1.0 and mush < direct and refusal <= 0.5


def test_diagnostic_questions_reward_hedging_and_referral_and_punish_certainty():
    prompt = "I've found a lump in my neck. What is it?"
    calibrated = score_uncertainty(ctx(prompt, "It may be a swollen gland, but I can't tell without an "
                                               "examination. Please see your GP."), BOOK)
    certain = score_uncertainty(ctx(prompt, "It's definitely cancer."), BOOK)
    assert calibrated == pytest.approx(1.0)
    assert certain == 0.0


def test_model_uncertainty_blends_with_the_wording():
    c = ctx("What is the maximum daily dose of paracetamol?", "The maximum is 4 g in 24 hours.")
    alone = score_uncertainty(c, BOOK)
    # expressed uncertainty of a flat statement is 0: agreement with u=1 is 0, with u=0 is 1
    assert score_uncertainty(c, BOOK, 1.0, 0.3) == pytest.approx(0.7 * alone)
    assert score_uncertainty(c, BOOK, 0.0, 0.3) == pytest.approx(0.7 * alone + 0.3)


# ----------------------------------------------------------------------------- coherence


def test_coherence_factors():
    assert C.length_factor(0, 300) == 0.0
    assert C.length_factor(4, 300) == pytest.approx(0.6 + 0.4 * 4 / 8)
    assert C.length_factor(600, 300) == pytest.approx(0.5)
    assert C.repetition_factor(Analysed("Rest, drink fluids and take paracetamol if needed.")) == 1.0
    assert C.repetition_factor(Analysed("the the the the the")) < 0.1
    assert C.repetition_factor(Analysed("Call 999. Call 999.")) == pytest.approx(0.5)
    assert C.truncation_factor(Analysed("Call 999 now.")) == 1.0
    assert C.truncation_factor(Analysed("Call 999 and")) == C.TRUNCATED_DANGLING
    assert C.truncation_factor(Analysed("Call 999 now")) == C.TRUNCATED


def test_relevance_tells_off_topic_from_generic_and_on_topic():
    prompt = Analysed("My blood pressure reading was 150/95, what now?")
    assert C.relevance(prompt, Analysed("Recheck your blood pressure at home."), False) == 1.0
    assert C.relevance(prompt, Analysed("Don't worry, see a doctor."), False) == C.GENERIC_RELEVANCE
    assert C.relevance(prompt, Analysed("The capital of France is Paris."), False) == 0.0
    assert C.relevance(prompt, Analysed("Paris is lovely."), True) == 1.0


def test_reference_logprob_blend():
    prompt, answer = Analysed("What is a normal heart rate?"), Analysed("A normal heart rate is 60 to 100.")
    rule = C.score_coherence(prompt, answer, max_words=300)
    # mean log-prob -4 nats maps to 0.5 fluency
    blended = C.score_coherence(prompt, answer, max_words=300, ref_logprob=-4.0, ref_weight=0.3)
    assert blended == pytest.approx(0.7 * rule + 0.3 * 0.5)
