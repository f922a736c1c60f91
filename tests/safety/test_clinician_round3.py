"""The third round of triage rules for clinicians' language (vignettes): emergencies written as a
clinician writes them (arrhythmias, limb ischaemia, cord compression, obstetric haemorrhage,
bleeding on anticoagulants, long lie and rhabdomyolysis, hip fracture signs, priapism, eye
emergencies), same-day presentations (exertional syncope, one ICD shock, GCA, optic neuritis,
Achilles rupture, prolonged fever in a child, cholecystitis, blocked catheter, raised INR, low
platelets) and the self-care end (self-limiting red eye, chest wall pain, ectopic beats, simple
back pain, plantar heel pain, minor scalds, short-term insomnia, nappy rash). Every sentence is
written for these tests; each group has hard negatives beside it (negated, past, general, a
different meaning, a lesser presentation of the same organ)."""

from __future__ import annotations

import pytest

from clinical_rlhf.safety import SafetyGuard


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def reasons(guard: SafetyGuard, question: str) -> set[str]:
    return {reason.id for reason in guard.triage(question).reasons}


EMERGENCY = [
    # arrhythmias (Resuscitation Council UK 2021; BHF ICD guidance)
    ("Telemetry: third degree AV block, escape rhythm 30, dizzy and grey", "life_threatening_arrhythmia"),
    ("Monitor shows Mobitz type II with dropped beats, presyncopal", "life_threatening_arrhythmia"),
    ("Paramedics report torsades de pointes, self-terminating, on methadone", "life_threatening_arrhythmia"),
    ("my defibrillator shocked me twice in the last hour", "life_threatening_arrhythmia"),
    # vascular (NICE CG147, ESVS 2020)
    ("Left leg cold and mottled to the knee since this morning, foot pulses impalpable", "limb_pallor_or_pulseless_limb"),
    ("His right arm went suddenly pale and numb at lunchtime", "limb_pallor_or_pulseless_limb"),
    # neuro (NICE NG234, CKS sciatica and Guillain-Barre)
    ("Known myeloma, mid-back pain, and since yesterday both legs are numb and giving way", "bilateral_leg_weakness_or_cord_signs"),
    ("Post-viral ascending weakness over three days, now struggling to swallow", "bilateral_leg_weakness_or_cord_signs"),
    ("Bedside FVC has dropped since this morning in a patient with myasthenia", "bilateral_leg_weakness_or_cord_signs"),
    # obstetric (RCOG GTG 63 and 52; NICE NG126)
    ("36 weeks pregnant, heavy bleeding with clots that started an hour ago", "heavy_bleeding_in_pregnancy"),
    ("Day 5 postpartum, now bleeding heavily and soaking a maternity pad every hour", "heavy_bleeding_after_birth"),
    ("Period 6 weeks late, pregnancy test was positive at home. Sharp pelvic pain and she collapsed at work.",
     "ectopic_signs_early_pregnancy"),
    # bleeding (NICE CKS haemoptysis, oral anticoagulation)
    ("Bronchiectasis patient coughing up mouthfuls of blood since breakfast", "major_haemoptysis"),
    ("Takes rivaroxaban; nosebleed that won't stop after 40 minutes of pressure", "major_bleeding_on_anticoagulant"),
    # trauma and muscle (NICE CG124; NHS rhabdomyolysis; long lie)
    ("Found by carers, had been lying on the floor overnight after slipping in the bathroom", "long_lie_after_fall"),
    ("After an ultramarathon his muscles are agony and his urine is cola coloured", "rhabdomyolysis_signs"),
    ("Nursing home resident after a fall: left leg shortened and externally rotated", "hip_fracture_signs"),
    # urology (NHS priapism)
    ("Sickle cell disease, erection that won't go down, painful since 3am", "priapism"),
    # eye (NHS eye injuries; NICE CKS glaucoma; RCOphth CRAO)
    ("Plasterer got wet cement in his right eye half an hour ago", "chemical_eye_injury"),
    ("Severe ache in the right eye with haloes around lights, vomiting, pupil mid-dilated", "acute_angle_closure_glaucoma"),
    ("Woke this morning and the sight in her right eye has suddenly gone black", "sudden_painless_loss_of_vision"),
]


@pytest.mark.parametrize(("question", "rule"), EMERGENCY)
def test_clinician_emergencies_are_emergencies(guard: SafetyGuard, question: str, rule: str) -> None:
    triage = guard.triage(question)
    assert triage.urgency == "emergency", triage.reasons
    assert rule in {reason.id for reason in triage.reasons}


URGENT = [
    # NICE CG109 1.2.1.3; BHF ICD guidance
    ("17-year-old blacked out while sprinting at training this morning, fine within a minute", "exertional_syncope_or_family_sudden_death"),
    ("ICD fired once while gardening, feels completely well now", "single_icd_shock"),
    # NICE CKS giant cell arteritis, optic neuritis, cellulitis
    ("78F, new headaches, jaw aches when chewing and her scalp is sore when brushing her hair", "giant_cell_arteritis"),
    ("Pain on eye movement and red desaturation in the left eye since Tuesday", "optic_neuritis"),
    ("5-year-old with a puffy red eyelid and a temperature of 38.4", "periorbital_cellulitis"),
    # NICE CKS Achilles rupture, gallstone disease, catheter
    ("Heard a pop at the back of the ankle at netball; Thompson test positive", "achilles_tendon_rupture"),
    ("Murphy's sign positive, RUQ pain since last night", "acute_cholecystitis"),
    ("Suprapubic catheter has stopped draining since lunchtime", "blocked_urinary_catheter"),
    # NICE NG143 fever for five days or more
    ("My 2 year old has had a fever for six days now", "fever_five_days_or_more"),
    # BNF warfarin; thrombocytopenia
    ("INR 6.1 this morning, no bruising or bleeding, on warfarin for AF", "inr_raised_no_bleeding"),
    ("Incidental platelet count 12 x10^9/L on a pre-op screen", "thrombocytopenia_severe"),
]


@pytest.mark.parametrize(("question", "rule"), URGENT)
def test_same_day_presentations_are_urgent(guard: SafetyGuard, question: str, rule: str) -> None:
    triage = guard.triage(question)
    assert triage.urgency == "urgent", triage.reasons
    assert rule in {reason.id for reason in triage.reasons}


SELF_CARE = [
    ("Eyes crusty and gunky on waking for three days, can see fine", "red_eye_self_limiting"),
    ("Spotted a blood spot in my eye after sneezing, it doesn't hurt", "red_eye_self_limiting"),
    ("Costochondritis suspected: tender over the left costal cartilages, reproducible on palpation", "chest_wall_pain_on_pressing"),
    ("Odd extra beats when I've had too much coffee", "occasional_ectopic_beats"),
    ("Put my back out lifting a sofa on Sunday, no leg symptoms", "simple_low_back_pain"),
    ("Plantar fasciitis in my right foot, what helps?", "plantar_heel_pain"),
    ("Small scald on my wrist from the kettle, cooled it under running water", "minor_scald_without_blisters"),
    ("Struggling to get to sleep since starting a new job", "short_term_sleep_difficulty"),
    ("Nappy area is red and sore, she is otherwise happy and feeding", "nappy_area_redness"),
]


@pytest.mark.parametrize(("question", "rule"), SELF_CARE)
def test_self_limiting_presentations_are_self_care(guard: SafetyGuard, question: str, rule: str) -> None:
    triage = guard.triage(question)
    assert triage.urgency == "self_care", triage.reasons
    assert rule in {reason.id for reason in triage.reasons}


NOT_THESE_RULES = [
    # negated, past, general, a different meaning
    ("No heart block on the ECG, sinus rhythm 70", "life_threatening_arrhythmia"),
    ("Non-sustained ventricular tachycardia on a Holter last year, under cardiology follow-up", "life_threatening_arrhythmia"),
    ("What is complete heart block?", "life_threatening_arrhythmia"),
    ("My fingers go white and numb in cold weather", "limb_pallor_or_pulseless_limb"),
    ("Both legs ache after running, no weakness", "bilateral_leg_weakness_or_cord_signs"),
    ("Pregnant, had a blood test today and my blood pressure was fine", "heavy_bleeding_in_pregnancy"),
    ("Coughing up phlegm with streaks of blood for two days", "major_haemoptysis"),
    ("On apixaban and my gums bleed a little when I brush", "major_bleeding_on_anticoagulant"),
    ("I had a long lie-in this morning and now have a headache", "long_lie_after_fall"),
    ("Lying on the floor at night helps my back", "long_lie_after_fall"),
    ("How long should an erection last after taking sildenafil?", "priapism"),
    ("Got shampoo in my eye in the shower and it stings", "chemical_eye_injury"),
    ("I fainted after giving blood", "ectopic_signs_early_pregnancy"),
    ("Went for a run and felt a bit faint afterwards in the heat", "exertional_syncope_or_family_sudden_death"),
    ("My jaw clicks when chewing", "giant_cell_arteritis"),
    ("My 8 week old had her vaccines today and her temp is 37.7", "fever_five_days_or_more"),
    ("INR 2.6 at clinic today, on warfarin", "inr_raised_no_bleeding"),
    ("Platelets 240 on the routine bloods", "thrombocytopenia_severe"),
    ("My heart skips a beat when I see my crush", "occasional_ectopic_beats"),
]


@pytest.mark.parametrize(("question", "rule"), NOT_THESE_RULES)
def test_rules_do_not_read_negated_general_or_other_meanings(guard: SafetyGuard, question: str, rule: str) -> None:
    assert rule not in reasons(guard, question)


def test_self_care_rules_never_lower_a_recognised_level(guard: SafetyGuard) -> None:
    """A self-care reading beside a red flag or a same-day sign leaves the higher level."""
    assert guard.triage("Costochondritis, but now crushing central chest pain spreading to my left arm and sweating").urgency \
        == "emergency"
    assert guard.triage("Put my back out lifting, and now numbness around my bottom and I can't pee").urgency == "emergency"
    assert guard.triage("Red sticky eye in a contact lens wearer, very painful and light hurts").urgency != "self_care"


def test_rules_carry_their_source(guard: SafetyGuard) -> None:
    triage = guard.triage("ECG: complete heart block, syncopal at home")
    reason = next(reason for reason in triage.reasons if reason.id == "life_threatening_arrhythmia")
    assert "Resuscitation Council UK" in reason.source


ROUND3_ADDITIONS = [
    # NICE CG95 atypical ACS; ESC 2020 rule-in; Resuscitation Council UK adverse features
    ("72F with diabetes, an hour of pressure in the upper abdomen, clammy and breathless", "atypical_acute_coronary_syndrome",
     "emergency"),
    ("Ongoing discomfort; ECG shows dynamic ST depression in the lateral leads", "ischaemic_ecg_or_raised_troponin", "emergency"),
    ("hs-TnI 230 ng/L on the first sample", "troponin_rule_in", "emergency"),
    ("Nan collapsed in the kitchen and her pulse is very slow, about 30", "arrhythmia_with_adverse_features", "emergency"),
    ("Sickle cell anaemia: crisis in the chest and getting breathless", "sickle_cell_acute_chest_or_severe_crisis", "emergency"),
    # NHS cuts; NICE NG138
    ("Deep laceration across the palm from broken glass, bleeding now controlled", "gaping_or_deep_wound", "urgent"),
    ("Two days of cough with green sputum, bronchial breathing at the left base on examination",
     "focal_chest_signs_with_infection", "urgent"),
]


@pytest.mark.parametrize(("question", "rule", "level"), ROUND3_ADDITIONS)
def test_cardiac_wound_and_chest_readings(guard: SafetyGuard, question: str, rule: str, level: str) -> None:
    triage = guard.triage(question)
    assert triage.urgency == level, triage.reasons
    assert rule in {reason.id for reason in triage.reasons}


@pytest.mark.parametrize(("question", "rule"), [
    ("Troponin 6 ng/L at 0 and 3 hours, pain free", "troponin_rule_in"),
    ("Exercise ECG last month: 1 mm ST depression at peak, no symptoms at all", "ischaemic_ecg_or_raised_troponin"),
    ("Carried heavy bags and my arm aches", "atypical_acute_coronary_syndrome"),
    ("Cut my thumb on a tin, do I need stitches? it's tiny", "gaping_or_deep_wound"),
    ("My heart rate goes fast when I run and I fainted once years ago", "arrhythmia_with_adverse_features"),
])
def test_cardiac_and_wound_rules_keep_their_bounds(guard: SafetyGuard, question: str, rule: str) -> None:
    assert rule not in reasons(guard, question)
