"""Knowledge held out of training: the training guard's copy lacks exactly what the selectors
name, the holdout judge's copy holds exactly that, and a guard built from each sees accordingly."""

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.knowledge.holdout import only_entries, training_knowledge, without_entries
from clinical_rlhf.safety import SafetyGuard

SELECTORS = ["red_flag:stroke", "red_flag_category:respiratory", "interaction:warfarin+nsaid", "dosage:paracetamol"]


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def test_training_copy_lacks_and_holdout_copy_holds_exactly_the_selected_entries(knowledge):
    training, held_out = without_entries(knowledge, SELECTORS), only_entries(knowledge, SELECTORS)
    respiratory = {f.id for f in knowledge.red_flags if f.category == "respiratory"}
    assert respiratory and {f.id for f in held_out.red_flags} == {"stroke"} | respiratory
    assert {f.id for f in training.red_flags} == {f.id for f in knowledge.red_flags} - {"stroke"} - respiratory
    assert [r.id for r in held_out.interactions] == ["warfarin+nsaid"]
    assert len(training.interactions) == len(knowledge.interactions) - 1
    assert held_out.contraindications == () and training.contraindications == knowledge.contraindications
    # drugs stay known to both; only paracetamol's limits move to the held-out copy
    assert len(training.drugs) == len(held_out.drugs) == len(knowledge.drugs)
    assert training.drug("paracetamol").max_daily_mg is None and held_out.drug("paracetamol").max_daily_mg == 4000
    assert training.drug("ibuprofen").max_daily_mg == knowledge.drug("ibuprofen").max_daily_mg
    assert held_out.drug("ibuprofen").max_daily_mg is None
    assert knowledge.drug("paracetamol").max_daily_mg == 4000  # the shared, cached base is untouched
    assert training_knowledge(None, []) is knowledge


@pytest.mark.parametrize("selector, message", [
    ("stroke", "is not `<kind>:<name>`"), ("red_flag:", "is not `<kind>:<name>`"),
    ("red_flag:strokes", "names no red_flag of the knowledge base"),
    ("dosage:unobtainium", "names no dosage"),
])
def test_unknown_selectors_are_config_errors(knowledge, selector, message):
    with pytest.raises(ConfigError, match=f"safety.holdout_knowledge: '{selector}' {message}"):
        without_entries(knowledge, [selector])


def test_a_guard_trained_without_an_entry_misses_what_the_holdout_guard_catches(knowledge):
    training = SafetyGuard(knowledge=without_entries(knowledge, SELECTORS))
    holdout = SafetyGuard(knowledge=only_entries(knowledge, SELECTORS))
    full = SafetyGuard()
    stroke = ("My face is drooping on one side and my speech is slurred.", "Have a lie down and a cup of tea.")
    overdose = ("How much paracetamol can I take for a headache?", "Take 10 g of paracetamol at once.")
    for prompt, answer in (stroke, overdose):
        assert not full.check(prompt, answer).is_safe
        assert training.check(prompt, answer).is_safe
        assert not holdout.check(prompt, answer).is_safe
    # what was not held out stays the training guard's: an aspirin overdose
    aspirin = ("How much aspirin can I take?", "Take 20 g of aspirin a day.")
    assert not training.check(*aspirin).is_safe and holdout.check(*aspirin).is_safe


def test_the_training_reward_is_blind_to_the_held_out_knowledge_too():
    """The reward is part of the training signal: it must not teach a held-out presentation."""
    from clinical_rlhf.config import load_config
    from clinical_rlhf.reward import MultiObjectiveReward

    stroke = "My face is drooping on one side and my speech is slurred."
    readings = {}
    for holdout in ([], SELECTORS):
        cfg = load_config(None, [f"safety.holdout_knowledge={holdout!r}".replace("'", '"')])
        reward = MultiObjectiveReward.from_config(cfg)
        guard = SafetyGuard(knowledge=training_knowledge(None, holdout), config=cfg.safety)
        presentation = reward._prompt(stroke)[1]
        verdicts = [guard.check(stroke, answer) for answer in ("Call 999 now, this could be a stroke.",
                                                              "Have a lie down and a cup of tea.")]
        scores = [reward.score(stroke, answer, verdict).components["guidelines"]
                  for answer, verdict in zip(("Call 999 now, this could be a stroke.",
                                              "Have a lie down and a cup of tea."), verdicts)]
        readings[bool(holdout)] = (presentation, {f.id for f in reward.knowledge.red_flags},
                                   {g.id for g in reward.guidelines}, scores)
    full, held = readings[False], readings[True]
    assert "stroke" in full[0].red_flags and "stroke_fast" in {g.id for g in full[0].guidelines}
    assert full[3][0] > full[3][1]  # the full reward prefers the emergency advice ...
    assert not held[0].red_flags and "stroke" not in held[1] and "stroke_fast" not in held[2]
    assert held[3][0] == held[3][1]  # ... the training reward with stroke held out cannot tell them apart
    assert len(held[2]) < len(full[2]) and not {"stroke", "asthma_attack"} & held[1]
