"""Hallucination checks: each kind of planted error is found, correct statements pass."""

import pytest

from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.reward.consistency import agreement, similarity, support
from clinical_rlhf.reward.drug_mentions import DrugIndex
from clinical_rlhf.reward.hallucination import HallucinationChecker
from clinical_rlhf.reward.text import Analysed


@pytest.fixture(scope="module")
def checker():
    return HallucinationChecker(DrugIndex(load_knowledge()))


def subtypes(checker, text, **kwargs):
    return [flag.subtype for flag in checker.check(Analysed(text), **kwargs)]


@pytest.mark.parametrize("text, expected", [
    ("Your doctor may prescribe velastatin to lower cholesterol.", "unknown_drug"),      # stem-shaped
    ("Take Painaway 500 mg every six hours.", "unknown_drug"),                            # named with a dose
    ("The maximum daily dose of paracetamol is 8 g.", "max_dose_overstated"),
    ("Never take more than 500 mg of paracetamol in a day.", "max_dose_understated"),
    ("You can take up to 1600 mg of ibuprofen in a single dose.", "max_dose_overstated"),
    ("Amlodipine is usually taken as 50 mg once daily.", "dose_exceeds_max"),
    ("Take 5 mg of paracetamol and repeat if needed.", "implausible_dose"),
    ("Paracetamol and amoxicillin interact, so don't take them together.", "interaction_not_in_kb"),
    ("Yes, ibuprofen and warfarin are safe to take together.", "interaction_denied"),
    ("Sildenafil and glyceryl trinitrate are safe to take together.", "interaction_denied"),
])
def test_planted_errors_are_flagged(checker, text, expected):
    assert expected in subtypes(checker, text)


@pytest.mark.parametrize("text", [
    "Adults can take up to 4 g of paracetamol in 24 hours, no more than 1 g at a time.",
    "The maximum daily dose of paracetamol for adults is 4000 mg.",
    "Over the counter, don't take more than 1200 mg of ibuprofen a day; a doctor may prescribe up to 3200 mg.",
    "Take 500 mg to 1 g of paracetamol every 4 to 6 hours, up to four times a day.",
    "Ibuprofen and warfarin interact: together they raise the risk of bleeding.",
    "Cetirizine and paracetamol have no known interaction.",
    "Nitrofurantoin modified-release 100 mg twice a day for three days.",
    "Statins such as atorvastatin lower cholesterol; co-amoxiclav is an antibiotic.",
    "Rest, drink fluids and see your GP if it lasts more than 10 days.",
])
def test_correct_statements_pass(checker, text):
    assert subtypes(checker, text) == []


def test_flags_escalate_never_veto_and_locate_the_evidence(checker):
    text = "Take Zorbitrex 50 mg twice daily."
    (flag,) = checker.check(Analysed(text))
    assert (flag.category, flag.action, flag.source) == ("hallucination", "escalate", "response")
    assert text[slice(*flag.span)].lower() == "zorbitrex" and flag.rule_id == "hallucination:unknown_drug:zorbitrex"


def test_dose_already_flagged_by_the_guard_is_not_counted_twice(checker):
    text = "Amlodipine is usually taken as 50 mg once daily."
    assert subtypes(checker, text, already_flagged_dose=True) == []


def test_similarity_values_that_set_the_consistency_threshold():
    index = DrugIndex(load_knowledge())
    a = "The maximum dose of paracetamol is 4 g a day."
    b = "Adults can take up to 4 g of paracetamol in 24 hours."
    assert similarity(a, b, index) == pytest.approx(0.6)   # stems 1/5 and claims {drug, dose} 2/2
    assert similarity(a, "Bananas grow in warm countries.", index) == 0.0
    assert agreement([a]) == 1.0 and support(a, []) == 1.0


def test_low_self_consistency_only_for_unsupported_answers(checker):
    samples = ["Adults can take up to 4 g of paracetamol in 24 hours.",
               "Paracetamol: no more than 4 g per day for adults."]
    assert "low_self_consistency" not in subtypes(checker, "The maximum dose of paracetamol is 4 g a day.",
                                                  samples=samples)
    assert "low_self_consistency" in subtypes(checker, "Bananas grow in warm countries.", samples=samples)
