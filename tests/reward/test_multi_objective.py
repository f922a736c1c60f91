"""The orchestrator: veto handling, breakdown contents, combinations, penalties, aggregation."""

import pytest

from clinical_rlhf.config import RewardConfig, config_from_mapping
from clinical_rlhf.errors import ConfigError
from clinical_rlhf.reward import COMPONENTS, MultiObjectiveReward, aggregate_breakdowns, group_samples
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

ALLOW = SafetyVerdict(action="allow")
REJECT = SafetyVerdict.from_flags([SafetyFlag(category="dosage", subtype="exceeds_daily_max", severity="critical",
                                              evidence="8 g", action="reject")])
CHEST = "I have crushing chest pain and sweating. What should I do?"
GOOD = "Call 999 now - this could be a heart attack. Don't drive yourself."


@pytest.fixture(scope="module")
def reward():
    return MultiObjectiveReward(RewardConfig())


def test_vetoed_answer_gets_exactly_the_veto_penalty_and_cost(reward):
    cfg = RewardConfig(veto_penalty=-2.5)
    vetoed = MultiObjectiveReward(cfg, knowledge=reward.knowledge).score(CHEST, GOOD, REJECT)
    assert vetoed.vetoed and vetoed.cost == 1.0 and vetoed.total == -2.5
    assert all(value == 0.0 for value in vetoed.components.values())
    assert vetoed.matched_guidelines == ("chest_pain_acs",)


def test_allowed_answer_breakdown(reward):
    b = reward.score(CHEST, GOOD, ALLOW)
    assert not b.vetoed and b.cost == 0.0
    assert set(b.components) == set(COMPONENTS) and all(0.0 <= v <= 1.0 for v in b.components.values())
    assert b.weights == {"safety": 0.35, "guidelines": 0.30, "uncertainty": 0.25, "coherence": 0.10}
    assert b.total == pytest.approx(sum(b.weighted.values()))
    assert b.matched_guidelines == ("chest_pain_acs",) and b.penalties == {"hallucination": 0.0}
    assert b.to_dict()["components"] == dict(b.components)


def test_good_answer_outscores_bad_answer_in_total(reward):
    bad = reward.score(CHEST, "It's probably indigestion, rest at home.", ALLOW)
    assert reward.score(CHEST, GOOD, ALLOW).total > bad.total + 0.5


def test_batch_keeps_order_and_mixes_vetoed_and_scored(reward):
    out = reward.score_batch([CHEST] * 3, [GOOD, "x", GOOD], [ALLOW, REJECT, ALLOW])
    assert [b.vetoed for b in out] == [False, True, False]
    assert out[0].total == out[2].total == reward.score(CHEST, GOOD, ALLOW).total


def test_hallucination_penalty_is_charged_per_flag_and_capped(reward):
    prompt = "What can I take for pain?"
    clean = reward.score(prompt, "Paracetamol 500 mg to 1 g every 4 to 6 hours can help.", ALLOW)
    flagged = reward.score(prompt, "Zorbitrex 50 mg and cardiozolol 20 mg every 4 to 6 hours can help.", ALLOW)
    assert clean.hallucination_flags == () and clean.penalties["hallucination"] == 0.0
    assert len(flagged.hallucination_flags) == 2
    assert all(f.category == "hallucination" and f.action == "escalate" for f in flagged.hallucination_flags)
    assert flagged.penalties["hallucination"] == pytest.approx(0.4)
    unpenalised = sum(flagged.weighted.values())
    assert flagged.total == pytest.approx(unpenalised - 0.4)
    heavy = MultiObjectiveReward(RewardConfig(hallucination_penalty=5.0), knowledge=reward.knowledge)
    capped = heavy.score(prompt, "Zorbitrex 50 mg helps.", ALLOW)
    assert capped.total == 0.0 and capped.penalties["hallucination"] == pytest.approx(sum(capped.weighted.values()))


@pytest.mark.parametrize("combination", ["geometric", "safety_gate"])
def test_nonlinear_combination_is_selected_by_config(reward, combination):
    cfg = config_from_mapping({"reward": {"combination": combination}}).reward
    other = MultiObjectiveReward(cfg, knowledge=reward.knowledge)
    unsafe = "Rest at home, it's probably nothing, and see your GP next week if it lasts."
    linear_total = reward.score(CHEST, unsafe, ALLOW).total
    assert other.score(CHEST, unsafe, ALLOW).total < linear_total


def test_from_config_and_a_learned_model_directory_that_is_not_one(tmp_path):
    cfg = config_from_mapping({"reward": {"combination": "geometric"}})
    assert MultiObjectiveReward.from_config(cfg).cfg.combination == "geometric"
    with pytest.raises(ConfigError, match="learned_model"):  # an empty directory: no reward model there
        MultiObjectiveReward(RewardConfig(learned_model=tmp_path))


def test_length_mismatch_names_the_argument(reward):
    with pytest.raises(ValueError, match="verdicts has 1 items"):
        reward.score_batch(["a", "b"], ["x", "y"], [ALLOW])


def test_self_consistency_samples_from_the_batch(reward):
    prompts = ["What is the max dose of paracetamol?"] * 4
    answers = ["The maximum dose of paracetamol is 4 g a day.",
               "Adults can take up to 4 g of paracetamol in 24 hours.",
               "Paracetamol: no more than 4 g per day for adults.",
               "Bananas grow in warm countries."]
    samples = group_samples(prompts, answers)
    assert samples[0] == answers[1:] and samples[3] == answers[:3]
    out = reward.score_batch(prompts, answers, [ALLOW] * 4, samples=samples)
    inconsistent = ["low_self_consistency" in [f.subtype for f in b.hallucination_flags] for b in out]
    assert inconsistent == [False, False, False, True]


def test_aggregate_breakdowns_hand_computed(reward):
    out = reward.score_batch([CHEST, CHEST, "What can I take for pain?"],
                             [GOOD, "x", "Zorbitrex 50 mg."], [ALLOW, REJECT, ALLOW])
    metrics = aggregate_breakdowns(out)
    totals = [b.total for b in out]
    assert metrics["reward/total/mean"] == pytest.approx(sum(totals) / 3)
    assert metrics["reward/vetoed_fraction"] == pytest.approx(1 / 3)
    assert metrics["reward/hallucination_rate"] == pytest.approx(1 / 3)
    # components average the scored (non-vetoed) answers only
    assert metrics["reward/safety/mean"] == pytest.approx((out[0].components["safety"]
                                                           + out[2].components["safety"]) / 2)
    assert metrics["reward/penalty/hallucination/mean"] == pytest.approx(out[2].penalties["hallucination"] / 3)
    assert aggregate_breakdowns([]) == {}


def test_no_torch_needed_for_the_rule_based_reward():
    import subprocess
    import sys

    code = ("import sys; from clinical_rlhf.reward import MultiObjectiveReward; "
            "from clinical_rlhf.config import RewardConfig; MultiObjectiveReward(RewardConfig()); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
