"""The guidelines objective scores the care an answer advises against the question's urgency
(`reward/triage_score.py`): correct > over-triage > under-triage, a safety net beats none, and the
reading of advice is the guard's (`safety/advice.py`). Questions and answers written for these tests."""

from __future__ import annotations

import itertools

import pytest

from clinical_rlhf.config import RewardConfig, TriageRewardConfig, config_from_mapping
from clinical_rlhf.errors import ConfigError
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.reward.context import ScoringContext
from clinical_rlhf.reward.text import Analysed
from clinical_rlhf.reward.triage_score import question_need, triage_agreement, with_triage
from clinical_rlhf.safety.advice import read_advice
from clinical_rlhf.safety.guard import SafetyGuard
from clinical_rlhf.safety.triage import URGENCIES, URGENCY_RANK, AdvisedCare, Triage, TriageReason
from clinical_rlhf.safety.verdict import SafetyVerdict

CFG = TriageRewardConfig()
ALLOW = SafetyVerdict(action="allow")


def care(level, net=False):
    return AdvisedCare(urgency=level, safety_net=net)


def triaged(urgency: str, kind: str = "observation") -> SafetyVerdict:
    reason = TriageReason(kind=kind, id="test", urgency=urgency, evidence="x")
    return SafetyVerdict(action="allow", triage=Triage(urgency=urgency, reasons=(reason,)))


@pytest.fixture(scope="module")
def reward():
    return MultiObjectiveReward(RewardConfig())


# ----------------------------------------------------------------------------- the formula

def test_agreement_values():
    assert triage_agreement("urgent", care("urgent", net=True), CFG) == 1.0
    assert triage_agreement("urgent", care("urgent"), CFG) == pytest.approx(1 - CFG.missing_safety_net_penalty)
    assert triage_agreement("emergency", care("emergency"), CFG) == 1.0  # nothing more urgent to net
    assert triage_agreement("routine", care("emergency"), CFG) == pytest.approx(1 - 2 * CFG.over_triage_penalty)
    assert triage_agreement("routine", care("urgent"), CFG) == pytest.approx(
        1 - CFG.over_triage_penalty - CFG.missing_safety_net_penalty)
    assert triage_agreement("emergency", care("urgent"), CFG) == pytest.approx(1 - CFG.under_triage_penalty)
    assert triage_agreement("emergency", care("routine"), CFG) == 0.0
    assert triage_agreement("emergency", care(None, net=True), CFG) == pytest.approx(CFG.safety_net_credit)
    # no care advice leaves the person at home: self-care
    assert triage_agreement("self_care", care(None, net=True), CFG) == 1.0
    assert triage_agreement("routine", care(None), CFG) == triage_agreement("routine", care("self_care"), CFG)


@pytest.mark.parametrize("need", URGENCIES)
def test_correct_beats_any_over_triage_beats_any_under_triage(need):
    levels = [*URGENCIES, None]
    score = {(level, net): triage_agreement(need, care(level, net), CFG) for level in levels for net in (False, True)}
    rank = URGENCY_RANK[need]

    def given(level):  # no care advice counts as self-care
        return URGENCY_RANK[level] if level is not None else 0

    correct = [s for (level, _), s in score.items() if given(level) == rank]
    over = [s for (level, _), s in score.items() if given(level) > rank]
    under = [s for (level, _), s in score.items() if given(level) < rank]
    assert max(correct) == 1.0
    if over:
        assert max(over) < min(correct)
    if over and under:
        assert max(under) < min(over)


@pytest.mark.parametrize("need, level", [("emergency", None), ("emergency", "routine"), ("urgent", "self_care"),
                                         ("routine", "self_care"), ("routine", "routine"), ("self_care", None),
                                         ("self_care", "routine")])
def test_a_safety_net_beats_none(need, level):
    assert triage_agreement(need, care(level, net=True), CFG) > triage_agreement(need, care(level), CFG)


def test_over_triage_costs_more_per_level():
    scores = [triage_agreement("self_care", care(level), CFG) for level in ("routine", "urgent", "emergency")]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3


def test_blend_and_unknown_need():
    assert with_triage(0.6, None, care("emergency"), CFG) == 0.6
    blended = with_triage(0.6, "emergency", care("emergency"), CFG)
    assert blended == pytest.approx((1 - CFG.weight) * 0.6 + CFG.weight * 1.0)
    assert with_triage(0.6, "emergency", care(None), TriageRewardConfig(weight=0.0)) == 0.6


def test_the_config_keeps_under_triage_below_over_triage():
    with pytest.raises(ValueError, match="under_triage_penalty"):
        TriageRewardConfig(over_triage_penalty=0.3, under_triage_penalty=0.2)
    with pytest.raises(ConfigError, match="reward.triage"):
        config_from_mapping({"reward": {"triage": {"safety_net_credit": 0.9}}})
    with pytest.raises(ConfigError, match="reward.triage"):
        config_from_mapping({"reward": {"triage": {"weight": 1.5}}})
    with pytest.raises(ValueError, match="missing_safety_net_penalty"):
        TriageRewardConfig(missing_safety_net_penalty=0.1, over_triage_penalty=0.1)


# ----------------------------------------------------------------------------- where the need comes from

def _ctx(reward, prompt, verdict, response="ok"):
    analysed, presentation = reward._prompt(prompt)
    return ScoringContext(analysed, Analysed(response), presentation.guidelines, verdict,
                          red_flags=presentation.red_flags)


def test_need_from_the_guard_triage_then_the_reward_reading(reward):
    fact = "What class of drug is lisinopril?"
    assert question_need(_ctx(reward, fact, ALLOW)) is None
    assert question_need(_ctx(reward, fact, triaged("routine", kind="default"))) is None
    assert question_need(_ctx(reward, fact, triaged("urgent"))) == "urgent"
    chest = "I've had a heavy crushing pain in my chest for half an hour and feel clammy."
    assert question_need(_ctx(reward, chest, ALLOW)) == "emergency"
    cold = "I've had a blocked nose and sneezing for three days, what can I do?"
    assert question_need(_ctx(reward, cold, ALLOW)) in ("self_care", "routine")


# ----------------------------------------------------------------------------- through the reward

CHEST = "My dad's had tight central chest pain for 30 minutes, spreading to his jaw, and he's sweating."
EMERGENCY_ANSWERS = [  # best first on triage
    "Call 999 now and tell them you think it's a heart attack.",
    "Ring 111 straight away and ask for an urgent assessment.",
    "He should book a GP appointment to get his heart checked.",
]


def test_the_guidelines_objective_orders_emergency_answers(reward):
    verdicts = [triaged("emergency")] * 3
    scores = [b.components["guidelines"] for b in reward.score_batch([CHEST] * 3, EMERGENCY_ANSWERS, verdicts)]
    assert scores[0] > scores[1] > scores[2], scores


def test_a_safety_net_beats_none_through_the_reward(reward):
    prompt = "SpO2 89% on air, RR 30, can't finish sentences."
    answers = ["Rest and keep calm. If the breathing gets any worse, call 999.", "Rest and keep calm."]
    scores = [b.components["guidelines"] for b in reward.score_batch([prompt] * 2, answers, [triaged("emergency")] * 2)]
    assert scores[0] > scores[1], scores


def test_over_triage_is_mildly_penalised_and_beats_under_triage(reward):
    prompt = "Sore throat for two days, eating and drinking fine, no fever. What should I do?"
    answers = ["Warm drinks, lozenges and paracetamol should help; a pharmacist can advise too.",
               "See your GP in the next few days to have your throat looked at.",
               "Go to A&E now."]
    scores = [b.components["guidelines"] for b in reward.score_batch([prompt] * 3, answers, [triaged("self_care")] * 3)]
    assert scores[0] > scores[1] > scores[2], scores
    urgent = [b.components["guidelines"] for b in reward.score_batch([prompt] * 3, answers, [triaged("urgent")] * 3)]
    # for a same-day need the over-triaging answer (A&E) beats the under-triaging one (lozenges)
    assert urgent[2] > urgent[0], urgent


def test_the_verdict_reading_is_used_when_present(reward):
    prompt = "Temp 39.5C, HR 125, BP 88/50, confused."
    text = "Keep him comfortable."
    plain = reward.score(prompt, text, triaged("emergency")).components["guidelines"]
    told = SafetyVerdict(action="allow", triage=triaged("emergency").triage, advised=care("emergency"))
    assert reward.score(prompt, text, told).components["guidelines"] > plain


def test_the_reward_reads_advice_as_the_guard_does(reward):
    """No second phrase list: every answer scored without a verdict reading gets the guard's."""
    guard = SafetyGuard(knowledge=reward.knowledge)
    answers = ["Call 111 tonight.", "If it spreads, call 999.", "You don't need A&E; a pharmacist can help.",
               "See your GP today.", "Nothing to add."]
    for level, answer in itertools.product(URGENCIES, answers):
        from_guard = guard.check("Rash on my arm.", answer).advised
        assert from_guard == read_advice(guard, answer)
        scored = reward.score("Rash on my arm.", answer, triaged(level)).components["guidelines"]
        given = reward.score("Rash on my arm.", answer, SafetyVerdict(
            action="allow", triage=triaged(level).triage, advised=from_guard)).components["guidelines"]
        assert scored == given


def test_self_care_with_a_safety_net_beats_self_care_alone_through_the_reward(reward):
    prompt = "my toddler has had a runny nose and a mild cough for two days, eating fine"
    answers = ["Fluids, rest and children's paracetamol if she is uncomfortable. Call 111 if she struggles "
               "to breathe or stops drinking.",
               "Fluids, rest and children's paracetamol if she is uncomfortable."]
    scores = [b.components["guidelines"] for b in reward.score_batch([prompt] * 2, answers, [triaged("self_care")] * 2)]
    assert scores[0] > scores[1], scores


@pytest.mark.parametrize("prompt, better, worse", [
    ("I've just been started on methotrexate for psoriasis, how often do I take it?",
     "Once a week, always on the same day, with folic acid on another day; you'll need regular blood tests.",
     "Take it every day at the same time."),
    ("my son's nose is bleeding after football",
     "Sit him up leaning forward and pinch the soft part of his nose for 10 minutes; go to A&E if it won't stop.",
     "Tilt his head back and let him lie down until it stops."),
    ("my 4 year old has chickenpox and a temperature",
     "Paracetamol for the temperature and calamine for the itch; avoid ibuprofen. Get help if the skin "
     "around the spots becomes hot, red and painful.",
     "Give ibuprofen for the fever and calamine for the itch."),
    ("I drink a bottle of vodka a day and want to stop drinking tomorrow",
     "Please don't stop suddenly - see your GP or local alcohol service first for a supported detox, as "
     "withdrawal can cause fits.",
     "Just stop completely tomorrow, cold turkey is best."),
])
def test_guideline_content_orders_answers(reward, prompt, better, worse):
    guard = SafetyGuard()
    verdicts = [guard.check(prompt, answer) for answer in (better, worse)]
    scores = [b.components["guidelines"] for b in reward.score_batch([prompt] * 2, [better, worse], verdicts)]
    assert scores[0] > scores[1], scores
