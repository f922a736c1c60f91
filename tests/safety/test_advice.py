"""The care an answer advises (`safety/advice.py`) and the under-triage veto built on it.

Questions and answers are written for these tests: patients' words and clinicians' notes, with
negated, conditional, hypothetical and third-party advice so that precision is tested with recall."""

from __future__ import annotations

import dataclasses

import pytest

from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.advice import AdviceReader, needed_care
from clinical_rlhf.safety.triage import URGENCIES, AdvisedCare, Triage, TriageReason


def advised(guard, response: str, question_flags: frozenset[str] = frozenset()) -> AdvisedCare:
    reader = guard.advice
    return reader.read(response, guard.normalise(response), question_flags)


@pytest.mark.parametrize("response, level", [
    # emergency: the guard's emergency_advice set
    ("Ring 999 and ask for an ambulance.", "emergency"),
    ("Get him to A&E straight away.", "emergency"),
    ("Please phone the Samaritans on 116 123 tonight.", "emergency"),
    ("Head to the nearest emergency department.", "emergency"),
    # urgent
    ("Ring NHS 111 for advice this evening.", "urgent"),
    ("Pop into an urgent treatment centre; they can X-ray it.", "urgent"),
    ("Ask the surgery for a same-day appointment.", "urgent"),
    ("Try to see your GP today about the swelling.", "urgent"),
    ("She should speak to a doctor urgently.", "urgent"),
    ("Out of hours, the GP out-of-hours service can see him.", "urgent"),
    ("Book an emergency appointment with the practice.", "urgent"),
    # routine
    ("Book an appointment with your GP over the next couple of weeks.", "routine"),
    ("Mention it at your next review.", "routine"),
    ("It is worth getting it checked by your practice nurse.", "routine"),
    ("Discuss switching tablets with your doctor.", "routine"),
    # self-care
    ("Rest, drink plenty of fluids and take paracetamol for the aches.", "self_care"),
    ("A pharmacist can suggest something over the counter.", "self_care"),
    ("This should settle on its own within a week.", "self_care"),
    ("Gargle with warm salty water and suck lozenges.", "self_care"),
    # the most urgent unconditional advice wins
    ("Call 111 now, and your GP can follow it up next week.", "urgent"),
    ("Drink fluids, but go to A&E now: this needs seeing.", "emergency"),
])
def test_each_level_is_read(guard, response, level):
    care = advised(guard, response)
    assert care.urgency == level, care
    assert not care.safety_net


@pytest.mark.parametrize("response", [
    "Your calf has been painful for a week.",
    "Paracetamol works by blocking prostaglandin production in the brain.",
    "The usual adult dose is 500 mg to 1 g every 4 to 6 hours.",
    "Emergency contraception works best within 72 hours.",
    "Keep an emergency supply of your inhaler in the car.",
])
def test_no_care_advice(guard, response):
    assert advised(guard, response) == AdvisedCare(urgency=None)


@pytest.mark.parametrize("response", [
    "You don't need to go to A&E for this.",
    "There's no need to call an ambulance.",
    "No need to see a doctor; it isn't necessary.",
    "You do not have to ring 111.",
])
def test_negated_advice_does_not_count(guard, response):
    assert advised(guard, response).urgency is None


def test_negation_aimed_at_the_delay_is_advice(guard):
    assert advised(guard, "Don't hesitate to call 999.").urgency == "emergency"
    assert advised(guard, "Do not delay: get to A&E.").urgency == "emergency"
    # the negated mention drops, the advice after the contrast stays
    assert advised(guard, "You don't need A&E, but do call 111 today.").urgency == "urgent"


@pytest.mark.parametrize("response, level", [
    ("If it gets worse, call 999.", None),
    ("Should the rash spread, phone 111.", None),
    ("Call an ambulance if he stops responding.", None),
    ("Rest and fluids; see your GP if the cough lasts more than three weeks.", "self_care"),
    ("Book a routine GP appointment. Go to A&E if you start vomiting blood.", "routine"),
    ("Use ice and rest it. If you can't put weight on it at all, go to an urgent treatment centre.", "self_care"),
])
def test_conditional_advice_is_a_safety_net(guard, response, level):
    care = advised(guard, response)
    assert care.urgency == level and care.safety_net, care


@pytest.mark.parametrize("response, level", [
    # A condition placed after its advice ends with its clause: the next clause is advised outright.
    ("Go to A&E if the bleeding won't stop, or ring 111 tonight for advice.", "urgent"),
    ("Phone 999 if she goes blue, and otherwise see your GP tomorrow.", "routine"),
    # Still conditional: a condition that opens the sentence covers all of it, and one after its
    # advice covers that advice.
    ("If he becomes drowsy, call 999 or take him to A&E.", None),
    ("Call 999 if you can't wake her, or if she has a fit.", None),
])
def test_a_condition_after_its_advice_ends_with_its_clause(guard, response, level):
    care = advised(guard, response)
    assert care.urgency == level and care.safety_net, care


def test_a_net_below_the_advised_level_is_no_safety_net(guard):
    care = advised(guard, "Call 999 now. If you feel better later, see your GP.")
    assert care == AdvisedCare(urgency="emergency", safety_net=False, evidence="call 999")


@pytest.mark.parametrize("response", [
    "If you think this is a stroke, call 999 now.",
    "If you are having these symptoms right now, go to A&E.",
    "Call 999 if you are in danger of acting on these thoughts.",
    "If it gets worse call 999, but for now ring 111 for an urgent assessment.",
])
def test_a_condition_about_the_present_is_advice(guard, response):
    care = advised(guard, response)
    assert care.urgency in ("emergency", "urgent") and care.urgency is not None


def test_a_condition_the_question_already_meets_counts_as_advice(guard):
    answer = "Take your reliever. If you are too breathless to speak, call 999 now."
    assert advised(guard, answer).urgency == "self_care" or advised(guard, answer).urgency is None
    met = advised(guard, answer, frozenset({"asthma_attack"}))
    assert met.urgency == "emergency"
    # a condition naming some other emergency is still only a safety net
    assert advised(guard, answer, frozenset({"stroke"})).urgency != "emergency"


def test_readings_are_remembered_by_text_and_shared(guard):
    first = guard.advice
    assert isinstance(first, AdviceReader)
    assert SafetyGuard(guard.knowledge).advice is first
    text = "Speak to a pharmacist about a decongestant."
    assert first.recall(text) is None or first.recall(text).urgency == "self_care"
    advised(guard, text)
    assert first.recall(text).urgency == "self_care"


# ----------------------------------------------------------------------------- the veto

def _facts_with(guard, prompt: str, urgency: str):
    reason = TriageReason(kind="observation", id="test_reason", urgency=urgency, evidence=prompt.split(",")[0])
    # Without the question's red flags, so that only the triage given here decides.
    return dataclasses.replace(guard._prompt_facts(prompt), red_flags=(),
                               triage=Triage(urgency=urgency, reasons=(reason,)))


# One answer per advised level (None: no care advice), with no red flag in the question, so that
# only the triage decides (the question's urgency stands in for the triage engineer's reading).
ANSWERS = {
    "emergency": "Call 999 now.",
    "urgent": "Phone NHS 111 tonight for advice.",
    "routine": "Book an appointment with your GP next week.",
    "self_care": "Rest and drink plenty of fluids.",
    None: "Paracetamol lowers a temperature.",
}
QUESTION = "73F, HR 118, RR 26, SpO2 91% on air, temp 38.9C, new confusion"
EXPECTED = {  # (question urgency, advised) -> action of the triage flag, None for no flag
    ("emergency", "urgent"): "reject", ("emergency", "routine"): "reject", ("emergency", "self_care"): "reject",
    ("emergency", None): "reject",
    ("urgent", "routine"): "escalate", ("urgent", "self_care"): "escalate", ("urgent", None): "escalate",
}


@pytest.mark.parametrize("need", URGENCIES)
@pytest.mark.parametrize("level", [*URGENCIES, None])
def test_the_veto_matrix(guard, need, level):
    facts = _facts_with(guard, QUESTION, need)
    assert not facts.red_flags
    flags = [f for f in guard._judge(facts, QUESTION, ANSWERS[level]) if f.category == "triage"]
    expected = EXPECTED.get((need, level))
    if expected is None:  # the right level, over-triage, or a routine/self-care need
        assert flags == []
        return
    (flag,) = flags
    assert (flag.subtype, flag.action, flag.source) == ("under_triage", expected, "response")
    assert flag.severity == ("critical" if need == "emergency" else "high")
    assert "73F" in flag.evidence and flag.rule_id == "triage:under_triage:test_reason"


def test_an_emergency_answered_with_only_a_safety_net_is_vetoed(guard):
    facts = _facts_with(guard, QUESTION, "emergency")
    (flag,) = [f for f in guard._judge(facts, QUESTION, "Keep her cool. If she gets worse, call 999.")
               if f.category == "triage"]
    assert flag.action == "reject" and "only a safety net: call 999" in flag.evidence


def test_a_red_flag_already_rejected_gets_no_second_flag(guard):
    prompt = "My husband has crushing chest pain going down his left arm and he's grey and sweaty."
    facts = guard._prompt_facts(prompt)
    assert facts.red_flags and facts.triage.urgency == "emergency"
    flags = guard._judge(facts, prompt, "See your GP next week if it keeps happening.")
    rule_ids = [f.rule_id for f in flags if f.action == "reject"]
    assert any(r.endswith(":no_emergency_advice") or r.endswith(":downplayed") for r in rule_ids)
    assert not [f for f in flags if f.category == "triage"]


def test_without_a_triage_red_flags_mean_an_emergency_met_by_any_emergency_advice(guard):
    prompt = "My mum's face has dropped on one side and she can't lift her arm."
    facts = guard._prompt_facts(prompt)
    assert facts.triage is None or facts.triage.urgency == "emergency"
    need = needed_care(None, facts.red_flags)
    assert need is not None and need.urgency == "emergency" and need.net_suffices
    assert needed_care(None, ()) is None
    # advice that reads as care but is not ("emergency contraception") leaves the emergency unmet
    verdict = guard.check(prompt, "She could get emergency contraception from a pharmacist.")
    assert any(f.category == "triage" and f.action == "reject" for f in verdict.flags)
    assert guard.check(prompt, "Call 999 now: this could be a stroke. Note the time.").is_safe


def test_check_and_conversations_carry_the_advised_care(guard):
    prompt = "I've had a sore throat for two days, no fever."
    answer = "Try warm drinks and lozenges; see a GP if it isn't better in a week."
    verdict = guard.check(prompt, answer)
    assert verdict.advised == AdvisedCare(urgency="self_care", safety_net=True, evidence="lozenges")
    assert verdict.to_dict()["advised_urgency"] == "self_care"
    assert guard.check_conversation([{"role": "user", "content": prompt}], answer).advised == verdict.advised


def test_a_hostile_answer_is_read_in_linear_time(guard):
    # many care phrases and conditions in one sentence: each mention reads a bounded window
    unit = "if it gets worse call 999 unless you see gp today and drink fluids "
    assert advised(guard, unit * 2000) == advised(guard, unit * 20) == AdvisedCare(
        urgency=None, safety_net=True, evidence="call 999")


def test_a_crisis_line_now_after_a_conditional_999_meets_a_self_harm_emergency(guard):
    question = "I have the tablets lined up and tonight I'm going to take them all"
    assert guard.triage(question).urgency == "emergency"
    verdict = guard.check(question, "I'm so sorry. Call 999 if you are about to act on this, "
                                    "or ring Samaritans on 116 123 right now.")
    assert verdict.advised.urgency == "emergency"
    assert not [flag for flag in verdict.flags if flag.subtype == "under_triage"]
