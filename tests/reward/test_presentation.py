"""What a prompt presents: the knowledge base's red flags read by the reward, and the guidelines
they match (with the shipped knowledge base and with small hand-built red flags)."""

import pytest

from clinical_rlhf.config import RewardConfig
from clinical_rlhf.knowledge import NearRule, RedFlag, load_knowledge
from clinical_rlhf.knowledge.guidelines import PromptReading, load_guidelines
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.reward.presentation import PresentationReader, RedFlagRecogniser, red_flag_form
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict


def _flag(flag_id, triggers=(), near=(), requires_any=(), **extra):
    return RedFlag(id=flag_id, name=flag_id, category="test", triggers=tuple(triggers), advice="a",
                   source="s", requires_any=tuple(requires_any), near=tuple(near), **extra)


def _recognise(flags, prompt):
    return RedFlagRecogniser(flags).recognise(PromptReading(prompt))


def test_red_flag_form_follows_the_knowledge_base_convention():
    assert red_flag_form("Can't lift my arm") == ["cant", "lift", "arm"]
    assert red_flag_form("temp of 38.4") == ["temp", "of", "38", "4"]


@pytest.mark.parametrize("prompt, found", [
    ("I can't lift my arm", {"weak_arm"}),
    ("Dad can't lift his arm", {"weak_arm"}),            # determiners skipped on both sides
    ("I can lift my arm. I can't, lift it", set()),        # a phrase never spans a clause
    ("I don't have any chest pain", set()),                # negated
    ("I had chest pain in 2019", set()),                   # past
    ("my chest feels squeezed", {"chest"}),                # `near`, any order
    ("my chest is fine but my belt feels squeezed tight", set()),  # out of reach
])
def test_triggers_and_near_rules(prompt, found):
    flags = (_flag("weak_arm", triggers=["cant lift my arm"]),
             _flag("chest", triggers=["chest pain"], near=[NearRule((frozenset({"chest"}), frozenset({"squeezed"})), 3)]))
    assert _recognise(flags, prompt) == found


def test_requires_any_must_occur_and_not_be_negated():
    flag = _flag("infant", triggers=["fever"], requires_any=["6 weeks old"])
    assert _recognise([flag], "my 6 weeks old has a fever") == {"infant"}
    assert _recognise([flag], "my toddler has a fever") == set()


@pytest.mark.skipif("exclusions" not in RedFlag.__dataclass_fields__,
                    reason="this knowledge-base version has no red-flag exclusions")
def test_exclusions_void_a_trigger_inside_them():
    flag = _flag("head", triggers=["head"], exclusions=("head cold",))
    assert _recognise([flag], "I hit my head") == {"head"}
    assert _recognise([flag], "I have a head cold") == set()


@pytest.fixture(scope="module")
def reader():
    return PresentationReader(load_guidelines(), load_knowledge().red_flags)


def test_the_shipped_red_flags_match_guidelines_the_guidelines_file_misses(reader):
    # Written in words no guideline trigger lists; the knowledge base's `near` rule finds it.
    prompt = "There's a band squeezing round my chest"
    assert "acute_coronary_syndrome" in reader.read(prompt).red_flags
    assert [g.id for g in reader.read(prompt).guidelines] == ["chest_pain_acs"]
    assert reader.read("How can I lower my risk of a heart attack?").red_flags == frozenset()


def test_guard_red_flags_in_the_verdict_match_guidelines_too(reader):
    reward = MultiObjectiveReward(RewardConfig(), knowledge=load_knowledge())
    flag = SafetyFlag(category="red_flag", subtype="testicular_torsion", severity="critical", evidence="e",
                      source="prompt", action="escalate")
    prompt = "something is badly wrong down there"
    plain = reward.score(prompt, "Go to A&E now.", SafetyVerdict(action="allow"))
    flagged = reward.score(prompt, "Go to A&E now.", SafetyVerdict.from_flags([flag]))
    assert plain.matched_guidelines == () and flagged.matched_guidelines == ("testicular_torsion",)
    assert flagged.components["safety"] == 1.0 and flagged.components["guidelines"] == 1.0
