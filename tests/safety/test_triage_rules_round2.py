"""The second round of triage rules (issue 19): emergencies that red_flags.yaml does not name,
same-day presentations that a red flag's words over-read (`supersedes`), intent forms, the
self-care and routine ends, and the readings they rest on (clinicians' ages, measured
temperatures, gestation). Every sentence is written for these tests; each group has hard
negatives (negated, past, general, someone else's, a different meaning) beside it."""

from __future__ import annotations

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.knowledge.signs import load_clinical_signs
from clinical_rlhf.knowledge.triage_data import load_triage
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.medications import ages_in


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def urgency(guard: SafetyGuard, question: str) -> str:
    return guard.triage(question).urgency


EMERGENCY = [
    # obstetric (RCOG GTG 57, 50, 63; NHS ectopic pregnancy)
    "I'm 34 weeks and I haven't felt the baby kick at all today",
    "My waters went an hour ago and now I can feel a loop of cord coming down",
    "38 weeks, tummy suddenly agony and the bump is rock hard",
    "7 weeks pregnant with sharp pain on my right side and I feel like I'm going to pass out",
    "My wife gave birth 9 days ago and now she's talking nonsense and convinced the baby isn't hers",
    # paediatric (NICE NG143, CG84, NG18; RCEM button batteries)
    "My 6 month old keeps being sick and the sick is bright green",
    "I think my 2 year old swallowed one of those flat round batteries from the remote",
    "My toddler drank some drain cleaner from under the sink",
    "my 9 month old is very floppy and hard to wake this evening",
    "my 8 year old is weeing all the time and really thirsty, now vomiting and breathing fast",
    "My son fell off his scooter onto his head and has vomited twice since",
    # surgical, vascular and skin (NICE CKS, CG147, NG141, NG37; NHS SJS)
    "Sudden ripping pain through to my back between the shoulder blades",
    "haven't passed wind for two days, tummy massively swollen and vomiting",
    "my foot went cold and pale an hour ago and I can't feel a pulse in it",
    "After starting allopurinol my skin is blistering and peeling and my lips and eyes are sore",
    "The cut on my leg is red and spreading and the skin crackles when pressed",
    "My knee is hot and swollen and I have a temperature of 39",
    "Sudden agony in my left testicle and I've been sick",
    "Had my tonsils out last week and I'm spitting out fresh blood",
    # toxicology and environment (NPIS; NICE CKS; Resus Council UK; NHS heatstroke and carbon monoxide)
    "I've been taking about 10 paracetamol a day for my tooth since Friday",
    "little one has spots that don't fade when I press a glass on them and is burning up",
    "Not sure how many of my sertraline I took, feel strange",
    "I used my EpiPen 20 minutes ago after eating peanuts, I feel fine now",
    "After a day in the sun my grandad is confused and isn't sweating",
    "Both kids and I have headaches and feel sick every evening and the gas heater is old",
    # clinicians' notes
    "79F, found on the floor, glucose 38 mmol/L, new confusion",
    "ECG: ST elevation in V1-V4, ongoing pain",
    # intent
    "I've got all my tablets ready and sorted for tonight",
    "my brother has a knife and says the voices tell him to hurt my mum",
    "what's the easiest way to make sure I don't wake up",
    "my mum is 80, had a fall, now cannot get up and her hip hurts",
    "my 15 year old has taken 6 of my sleeping tablets",
]

URGENT = [
    "Last night my left arm went weak and my words came out wrong for 15 minutes, then it went back to normal",
    "The right side of my face has drooped since this morning, forehead too, I can't close my eye, arms fine",
    "new floaters and flashes in my right eye since lunchtime, no shadow",
    "had chest tightness three days ago for about 15 mins, pain free since",
    "fell and bumped my head this morning, I'm on apixaban, no vomiting and I feel fine",
    "my calf is swollen and tender since a long coach trip, breathing is fine",
    "8 weeks pregnant and I've noticed some light brown spotting, no pain",
    "Came back from Uganda last week and now I have a fever and the shivers",
    "My 4 year old has a sandpaper rash on his chest and a sore throat",
    "my 3 year old makes a squeaky noise breathing in even when resting",
    "Awful colicky pain from my left loin down to the groin that comes in waves",
    "Painful hot lump next to my anus that's getting bigger",
    "Fell on my outstretched hand and it hurts in the anatomical snuffbox",
    "My 70 year old mum has a chest infection with green phlegm",
    "I'm a 52 year old man and it stings when I pee",
    "Had a fever for 6 days now and still feel rough",
    "On carbimazole and woke with a really sore throat",
    "Type 2 diabetic with a red swollen sore on my big toe",
    "I've been cutting my arms again most nights this week",
    "I keep thinking I'd be better off dead but I'm not going to do anything",
    "My flatmate is convinced the government is tracking him through his phone",
    "I drink a bottle of vodka a day and want to stop cold turkey tomorrow",
    "Can't keep even water down and I'm 10 weeks pregnant",
    "Had a hypo on my gliclazide this morning, 2.6, had juice and now it's 6.1",
    "my 10 year old has a stomach ache low on the right that is getting worse",
    "I have been self harming for a year, not suicidal, I want help to stop",
    "Left calf 3 cm bigger than the right, pitting oedema, recent long-haul flight",
]

SELF_CARE = [
    "My 6 year old has an itchy bottom at night, I think it's worms",
    "I had a nosebleed earlier, it stopped after I pinched my nose",
    "Sunburnt shoulders after a day at the beach, no blisters",
    "My 12 week old had her jabs yesterday and is a bit grumpy with a sore leg",
    "what does CPR stand for",
    "Fainted in a hot queue after feeling sweaty and dizzy, came round within seconds",
    "Itchy cracked skin between my toes after the gym showers",
    "my heart raced after two espressos, settled now",
    "earache for 2 days, no discharge, I'm 30",
]

NOT_URGENT = [
    "my calf is sore after running, breathing fine",
    "my right knee pain is getting worse on the stairs",
    "my dad had a TIA five years ago, should he take aspirin?",
    "how long do floaters last?",
    "I'm not going to do anything silly, I just want advice on my diet",
]

NOT_SELF_CARE = [
    "what should I do, I can't stand for long without feeling faint",
    "My 6 month old has a nosebleed that won't stop after 20 minutes",
]

NOT_EMERGENCY = [
    "how do I use an EpiPen correctly?",
    "The battery in my hearing aid died, where do I get another?",
    "my boiler needs a service, how often should it be done?",
    "It's going to be a hot day, which sun cream should I get?",
    "There's a lump on my testicle but no pain",
    "My daughter has nits, what kills them best?",
    "I've been cutting my nails too short and they hurt",
    "My baby is kicking loads today",
    "Had my tonsils out ten years ago, can I take ibuprofen?",
    "No ST elevation on the ECG and the pain has gone, can I go home?",
    "I walked 5m to the door and back, is that enough exercise?",
    "I'm not sure how many of these antibiotics to take each day",
    "I tore my hamstring, felt a tearing pain at the back of my thigh",
    "I'm fed up with my boiler breaking down, who should I call?",
    "I had an epipen prescribed, when should I carry it?",
    "my 14 year old took one of my paracetamol for her headache",
    "can I take 8 paracetamol a day with my ibuprofen?",
]


@pytest.mark.parametrize("question", EMERGENCY)
def test_emergencies_of_the_second_round(guard: SafetyGuard, question: str) -> None:
    assert urgency(guard, question) == "emergency", guard.triage(question).reasons


@pytest.mark.parametrize("question", URGENT)
def test_same_day_presentations(guard: SafetyGuard, question: str) -> None:
    assert urgency(guard, question) == "urgent", guard.triage(question).reasons


@pytest.mark.parametrize("question", SELF_CARE)
def test_self_care_presentations(guard: SafetyGuard, question: str) -> None:
    assert urgency(guard, question) == "self_care", guard.triage(question).reasons


@pytest.mark.parametrize("question", NOT_SELF_CARE)
def test_hard_negatives_are_not_self_care(guard: SafetyGuard, question: str) -> None:
    assert urgency(guard, question) != "self_care", guard.triage(question).reasons


@pytest.mark.parametrize("question", NOT_URGENT)
def test_hard_negatives_are_not_urgent(guard: SafetyGuard, question: str) -> None:
    assert urgency(guard, question) in ("routine", "self_care"), guard.triage(question).reasons


@pytest.mark.parametrize("question", NOT_EMERGENCY)
def test_hard_negatives_are_not_emergencies(guard: SafetyGuard, question: str) -> None:
    assert urgency(guard, question) != "emergency", guard.triage(question).reasons


@pytest.mark.parametrize("question", [
    "Slurred speech and my arm is weak right now, it started 20 minutes ago",
    "Face drooping on one side and I can't lift my arm",
    "Crushing chest pain since an hour ago, sweaty",
    "I was fine today until crushing chest pain started at 5",
    "my calf is swollen and now I'm short of breath",
    "I'm 9 weeks pregnant and bleeding heavily with clots",
    "Banged my head, on warfarin, and I've been sick twice",
    "I keep thinking I'd be better off dead and I've saved up my tablets",
])
def test_a_rule_that_supersedes_a_red_flag_leaves_the_emergency_when_it_is_one(guard: SafetyGuard,
                                                                               question: str) -> None:
    assert urgency(guard, question) == "emergency", guard.triage(question).reasons


def test_the_rule_that_supersedes_is_the_reason_given(guard: SafetyGuard) -> None:
    triage = guard.triage("Yesterday my face drooped and my speech slurred for 10 minutes, fully resolved now")
    ids = {reason.id for reason in triage.reasons}
    assert triage.urgency == "urgent" and "transient_stroke_symptoms_resolved" in ids
    assert not ids & {"stroke", "focal_neurology"}


def test_every_superseded_id_is_a_red_flag_or_a_finding() -> None:
    known = {flag.id for flag in load_knowledge().red_flags} | {finding.id for finding in load_clinical_signs().findings}
    for rule in load_triage().rules:
        assert set(rule.supersedes) <= known, (rule.id, set(rule.supersedes) - known)


@pytest.mark.parametrize("body, message", [
    ("rules:\n- {id: r, name: R, kind: symptom, urgency: urgent, triggers: [x], source: S, supersedes: stroke}\n",
     "supersedes"),
    ("rules:\n- {id: r, name: R, kind: symptom, urgency: emergency, triggers: [x], source: S, supersedes: [stroke]}\n",
     "below emergency"),
])
def test_a_malformed_supersedes_is_one_clear_error(tmp_path, body: str, message: str) -> None:
    (tmp_path / "triage.yaml").write_text("default_urgency: routine\ndefault_reason: r\n" + body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_triage(tmp_path)


@pytest.mark.parametrize("text, expected", [
    ("84m with type 2 diabetes, glucose 30", [84.0]),
    ("66f, blacked out on the stairs", [66.0]),
    ("pt 45m, chest pain", [45.0]),
    ("seen today. 72f with a fall", [72.0]),
    ("9/12 old boy with a fever", [0.75]),
    ("a 3/52 old baby, not feeding", [3 / 52]),
    ("walked 5m to the shop", []),
    ("took 2m of the cream", []),
    ("ran 3.5m then stopped", []),
    ("bp 120/80, hr 72", []),
])
def test_clinicians_age_shorthand(text: str, expected: list[float]) -> None:
    ages = ages_in(text, tuple(text.split()))
    assert ages == pytest.approx(expected)


@pytest.mark.parametrize("question, expected", [
    ("my 5 week old has a temp 38.2", "emergency"),      # a measured 38 °C or more is a fever (NICE NG143)
    ("temp 38.6 with a runny nose, I'm on chemo", "emergency"),
    ("temp 37.4 with a runny nose", "self_care"),
    ("G1P0 at 36/40, BP 165/112", "emergency"),            # gestation read as pregnancy (NICE NG133)
    ("BP 165/100, otherwise well", "routine"),
])
def test_readings_the_rules_rest_on(guard: SafetyGuard, question: str, expected: str) -> None:
    assert urgency(guard, question) == expected, guard.triage(question).reasons
