"""Clinician language -> triage reasons (`safety/signs.py`): single values, NEWS2, qSOFA, NICE NG51
and NG143 thresholds by age, examination findings and decision rules. Every case note and patient
sentence here was written for this file; hard negatives (negated, past, hypothetical, normal values,
values within a stated target) test precision as the emergencies test recall."""

from __future__ import annotations

import random
import statistics
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety.medications import ages_in
from clinical_rlhf.safety.signs import ClinicalSignsReader
from clinical_rlhf.safety.triage import most_urgent

from .cost_shape import assert_linear_shape


@pytest.fixture(scope="module")
def reader(guard) -> ClinicalSignsReader:
    return ClinicalSignsReader(guard.knowledge, guard.context, guard.normalise.phrase_tokens)


def read(reader, guard, text: str):
    normalised = guard.normalise(text)
    return reader.reasons(normalised, ages_in(normalised.text, normalised.tokens))


def triage(reader, guard, text: str) -> tuple[str | None, set[str]]:
    """(the most urgent reason's urgency or None, the reasons' ids)."""
    reasons = read(reader, guard, text)
    return (most_urgent([r.urgency for r in reasons]) if reasons else None), {r.id for r in reasons}


EMERGENCIES = [
    ("Pt 81M from a nursing home, RR 28, SpO2 89% on air, BP 86/52, HR 126, temp 39.4, newly confused.",
     {"spo2_low", "systolic_low", "news2", "qsofa", "ng51_sepsis_high_risk"}),
    ("Type 1 diabetic, vomiting since last night, capillary glucose 27 mmol/L, blood ketones 5.1",
     {"diabetic_ketoacidosis", "ketones_high"}),
    ("Dialysis patient, potassium came back at 7.1 this afternoon", {"hyperkalaemia_severe"}),
    ("Found on the kitchen floor, BM 1.8, only responds to pain", {"hypoglycaemia_with_reduced_consciousness"}),
    ("Asthmatic 24F, PEF 110 L/min against a best of 420, speaking in single words only",
     {"peak_flow_life_threatening", "silent_chest"}),
    ("19 year old student, fever 39.1, neck stiffness and a purpuric rash on both shins",
     {"neck_stiffness", "non_blanching_rash"}),
    ("O/E abdomen: guarding and rebound tenderness in the RIF, HR 108", {"peritonism"}),
    ("VBG lactate 5.2, febrile since this morning", {"lactate_high", "ng51_sepsis_high_risk"}),
    ("my husband's BP is 78/40 and he feels faint", {"systolic_low"}),
    ("GCS E2 V2 M4 after a fall down the stairs", {"gcs_severely_reduced"}),
    ("my 8 month old has a resp rate of 64 and is grunting", {"child_tachypnoea_red", "accessory_muscles"}),
    ("temp 104.5 F and a stiff neck, can't look at the light", {"neck_stiffness"}),
    ("O/E Kernig's positive, photophobic, T 38.7", {"meningism", "photophobia_with_fever"}),
    ("Sudden shortness of breath, pulse 118, calf swollen and tender, on chemo for breast cancer", {"wells_pe"}),
    ("Chest pain, 68 year old, diabetic, smoker, hypertension, ST depression on ECG, raised troponin", {"heart"}),
    ("Na 116 on this morning's bloods, drowsy", {"hyponatraemia_severe"}),
    ("Suspected pneumonia, RR 24, BP 98/64, acutely confused", {"qsofa"}),
    ("Known CO2 retainer, sats 84% on air", {"spo2_below_target"}),
    ("Trachea deviated to the left, absent breath sounds on the right", {"tracheal_deviation", "absent_breath_sounds"}),
    ("Sore throat, drooling and can't swallow saliva, muffled voice", {"drooling"}),
    ("NEWS2 of 8 at handover", {"news2_stated_high"}),
    ("Found collapsed in the garden, unresponsive", {"acvpu_u"}),
    ("72M, new confusion since yesterday, T 38.6", {"acvpu_c", "ng51_sepsis_high_risk"}),
    ("Pregnant 32/40, BP 162/110, headache", {"pregnancy_severe_hypertension", "pregnancy_severe_diastolic"}),
    ("Community acquired pneumonia, confused, RR 31, BP 100/58", {"crb65", "qsofa"}),
    ("VBG pH 7.08 and vomiting", {"acidaemia_severe"}),
    ("On chemo for lymphoma, neuts 0.3, temp 38.3", {"neutropenic_sepsis"}),
    ("Tachycardic at 140, hypotensive 84/50", {"systolic_low", "tachycardia_severe"}),
]


@pytest.mark.parametrize(("text", "expected"), EMERGENCIES, ids=[e[0][:40] for e in EMERGENCIES])
def test_emergencies(reader, guard, text, expected) -> None:
    urgency, ids = triage(reader, guard, text)
    assert urgency == "emergency", (urgency, ids)
    assert expected <= ids, ids


URGENT = [
    ("BP 186/124 on two readings, no symptoms", {"severe_hypertension", "diastolic_severe"}),
    ("Hb 64 g/L on routine bloods, feels tired all the time", {"anaemia_severe"}),
    ("sats 93% on air and a chesty cough", {"spo2_borderline"}),
    ("my 3 week old baby has a temperature of 38.2", {"infant_fever_under_3_months"}),
    ("my 4 month old has a temp of 39.3", {"infant_fever_3_to_6_months"}),
    ("K 6.2 on repeat", {"hyperkalaemia_moderate"}),
    ("ketones 2.1 and my sugar is 17", {"ketones_raised"}),
    ("Twisted my ankle at football, can't weight bear and tender over the lateral malleolus", {"ottawa_ankle"}),
    ("Calf swelling after a long flight, pitting oedema, whole leg swollen", {"wells_dvt"}),
    ("my 18 month old has a heart rate of 158", {"child_tachycardia_1_to_2"}),
    ("capillary refill 4 seconds", {"capillary_refill_prolonged"}),
    ("HR 135, otherwise well", {"tachycardia_severe"}),
    ("my 10 year old has a heart rate of 125", {"child_tachycardia_8_to_11"}),
    ("BP 150/95 at the antenatal check, 36 weeks pregnant", {"pregnancy_hypertension", "pregnancy_raised_diastolic"}),
    ("INR 9.4 on warfarin, no bleeding or bruising", {"inr_very_high"}),
    ("Nan is very drowsy today and only responds to voice", {"acvpu_v", "news2"}),
]


@pytest.mark.parametrize(("text", "expected"), URGENT, ids=[u[0][:40] for u in URGENT])
def test_urgent(reader, guard, text, expected) -> None:
    urgency, ids = triage(reader, guard, text)
    assert urgency == "urgent", (urgency, ids)
    assert expected <= ids, ids


def test_routine_centor_and_self_care_feverpain(reader, guard) -> None:
    reasons = {r.id: r for r in read(reader, guard, "Sore throat, tonsillar exudate and tender cervical nodes, "
                                                    "temp 38.4. Hasn't had any cough")}
    assert reasons["centor"].urgency == "routine"
    assert reasons["centor"].detail.startswith("Centor criteria for sore throat 4 ")
    assert reasons["feverpain"].urgency == "self_care"
    assert "not stated, scored 0: attend_rapidly, inflamed_tonsils" in reasons["feverpain"].detail


def test_crb65_zero_is_routine(reader, guard) -> None:
    (crb65,) = read(reader, guard, "Chest infection, 45 year old, RR 20, BP 125/80")
    assert (crb65.id, crb65.urgency) == ("crb65", "routine")
    assert crb65.detail.startswith("CRB65 score for community-acquired pneumonia 0 (low risk")
    assert "not stated, scored 0: confusion" in crb65.detail


@pytest.mark.parametrize("text", [
    "Sore throat since yesterday, coughing a lot, no pus on the tonsils",
    "Rolled my ankle yesterday, no bony tenderness over either malleolus",
    "Twisted my knee skiing, no patellar tenderness and can bend it past 90",
])
def test_self_care_end_of_decision_rules(reader, guard, text) -> None:
    urgency, ids = triage(reader, guard, text)
    assert urgency == "self_care", (urgency, ids)


@pytest.mark.parametrize("text", [
    "Obs normal: HR 76, BP 128/82, RR 16, sats 97% on air, temp 36.9, GCS 15",
    "No neck stiffness, no photophobia, no rash.",
    "He had meningitis with a purpuric rash years ago",
    "Her BP was 82/50 when she was septic in 2019",
    "Is it true that sats below 92 always need hospital?",
    "I'm confused about how much ibuprofen to give",
    "take 2 tablets every 4 hr 500 mg each",
    "Abdomen soft, no guarding or rebound tenderness",
    "my baby is teething and drooling a lot",
    "Migraine with photophobia again, no fever",
    "Known CO2 retainer, target 88-92%, sats 90% on air",
    "76 year old, HR 125 after climbing the stairs",  # an adult's 125 scores NEWS2 2 only
    "pulse 72, temp 37.1, BP 118/76, blood sugar 5.6",
    "BP 150/95 at the pharmacy check, otherwise well",  # not pregnant: a routine matter
    "Woke up with a stiff neck after sleeping awkwardly on the sofa",
    "Reduced air entry at the left base, sats 96% on air",
    "I have 2 teaspoons of sugar in my tea, is that bad for my diabetes?",
])
def test_hard_negatives_raise_nothing(reader, guard, text) -> None:
    assert read(reader, guard, text) == []


def test_news2_is_computed_from_what_the_text_gives(reader, guard) -> None:
    # RR 22 (2) + SpO2 95% air (1) + systolic 105 (1) + pulse 95 (1) + temp 38.4 (1) = 6, by hand
    (news2,) = [r for r in read(reader, guard, "RR 22, sats 95% on air, BP 105/70, HR 95, T 38.4") if r.id == "news2"]
    assert news2.urgency == "urgent" and news2.kind == "score"
    assert news2.detail.startswith("NEWS2 6 (medium")
    assert "not stated, scored 0: consciousness (alert assumed)" in news2.detail
    # the same on 2 L of oxygen: +2 for oxygen = 8
    (news2,) = [r for r in read(reader, guard, "RR 22, sats 95% on 2L, BP 105/70, HR 95, T 38.4") if r.id == "news2"]
    assert news2.urgency == "emergency" and news2.detail.startswith("NEWS2 8 ")
    assert "Royal College of Physicians" in news2.source


def test_news2_uses_scale_2_only_with_a_stated_hypercapnic_target(reader, guard) -> None:
    # 89% on air is 3 points on scale 1 (single parameter 3 -> urgent), 0 on scale 2.
    urgency, ids = triage(reader, guard, "COPD, sats 89% on air, RR 18")
    assert urgency == "emergency" and "spo2_low" in ids
    assert triage(reader, guard, "COPD with a target of 88-92%, sats 89% on air, RR 18") == (None, set())


def test_negation_of_an_earlier_clause_does_not_hide_a_value(reader, guard) -> None:
    reasons = {r.id: r for r in read(reader, guard, "Sore throat, no cough, temp 38.6, tender glands")}
    assert "fever 1 (38.6)" in reasons["centor"].detail


def test_wells_pe_scores_stated_elements_and_names_the_rest(reader, guard) -> None:
    (wells,) = [r for r in read(reader, guard, "breathless, HR 112, previous DVT, 10 days post op, no haemoptysis")
                if r.id == "wells_pe"]
    assert wells.urgency == "emergency"  # 1.5 + 1.5 + 1.5 = 4.5 > 4: PE likely
    assert wells.detail.startswith("Wells score for pulmonary embolism (two-level) 4.5 (PE likely")
    assert "haemoptysis 0 (stated absent)" in wells.detail
    assert "not stated, scored 0: dvt_signs, pe_most_likely, malignancy" in wells.detail
    assert "NICE NG158" in wells.source


def test_paediatric_thresholds_follow_the_stated_age(reader, guard) -> None:
    assert triage(reader, guard, "my 4 year old has a heart rate of 145")[0] == "urgent"
    assert triage(reader, guard, "my 9 year old has a heart rate of 145")[0] == "urgent"
    assert triage(reader, guard, "heart rate of 145")[0] == "urgent"          # an adult: NEWS2 3
    assert triage(reader, guard, "my 4 year old has a heart rate of 125") == (None, set())
    assert triage(reader, guard, "my 5 month old has a temp of 38.4") == (None, set())  # below 39 at 3-6 months


def test_reasons_carry_evidence_detail_and_source(reader, guard) -> None:
    reasons = {r.id: r for r in read(reader, guard, "temp 94.6 F and shivering, found outside")}
    reason = reasons["hypothermia"]
    assert (reason.kind, reason.urgency) == ("observation", "urgent")
    assert reason.evidence == "temp 94.6 f" and "34.8 °C" in reason.detail and "NEWS2" in reason.source
    assert reasons["news2"].detail.startswith("NEWS2 3 (a single parameter scoring 3")


_PIECES = ["hr", "bp", "sats", "t", "gcs", "e3", "v", "m5", "k+", "bm", "pef", "best", "%", "/", ".", ",", "°c", "f",
           "0", "00", "7", "38.9", "120", "999", "/15", "mmhg", "on", "2l", "ra", "no", "was", "<", ">", "of",
           "sore throat", "no cough", "calf swelling", "pregnant", "\n", "ｈｒ", "℃", "-"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_PIECES), max_size=40), st.sampled_from([" ", "", ": "]),
       st.lists(st.floats(0, 120), max_size=2))
def test_any_mix_of_labels_numbers_and_units_reads_without_error(reader, guard, pieces, joiner, ages) -> None:
    for reason in reader.reasons(guard.normalise(joiner.join(pieces)), ages):
        assert reason.urgency in ("emergency", "urgent", "routine", "self_care") and reason.source


def _costly_text(rng: random.Random, size: int) -> str:
    """Values, units, labels without values and finding phrases, in one long list with few breaks."""
    parts = ["HR 124", "BP 92/58", "sats 86% RA", "T 38.9", "K+ 6.8", "GCS 12 (E3 V4 M5)", "BM 2.1",
             "hr hr hr", "temp temp", "12/10", "1.2.3.4", "98 %", "39.5 °c", "sats below 90", "no neck stiffness",
             "guarding", "calf swelling", "sore throat", "no cough", "previous DVT", "peak flow 150 best 450"]
    text = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))
    while len(text) < size:
        text += ", " + rng.choice(parts)
    return text[:size]


@pytest.mark.cost_shape
def test_cost_grows_linearly_with_numbers_and_units(reader, guard) -> None:
    """The reader's CPU time grows linearly with the text (the bound of `cost_shape.py`)."""
    rng = random.Random(19)

    def seconds(size: int) -> float:
        measurements = []
        for _ in range(3):
            spent, calls = 0.0, 0
            while spent < 0.02:
                text = guard.normalise(_costly_text(rng, size))
                started = time.thread_time()
                reader.reasons(text, [])
                spent += time.thread_time() - started
                calls += 1
            measurements.append(spent / calls)
        return statistics.median(measurements)

    assert_linear_shape(seconds, 2048, "readings of numbers and units")
