"""The third round of triage rules for questions in patients' words (issue 19): ENT, injury and
musculoskeletal presentations, a child's warning signs by age, suicidal and psychotic wording,
threats to others, and the self-care end (worried-well questions, aches after activity, common
complaints in lay words). Every sentence is written for these tests; each group has hard
negatives (negated, chronic, idiomatic, a different meaning) beside it, so a rule that reads too
much fails here."""

from __future__ import annotations

import pytest

from clinical_rlhf.safety import SafetyGuard


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def triage_of(guard: SafetyGuard, question: str):
    return guard.triage(question)


EMERGENCY = [
    # ENT and dental (NHS "Dental abscess", "Nosebleed")
    "my wisdom tooth has been throbbing for days and now my cheek has swollen right up to my eye",
    "infected tooth at the back, my neck is swelling and it hurts to swallow",
    "Nose has been bleeding for 25 minutes even though I'm pinching it and leaning forward",
    "can't stop my nosebleed, it's been going nearly an hour and I keep swallowing a lot of blood",
    # injury (BOA BOAST compartment syndrome; NHS burns; Resuscitation Council UK choking)
    "Had my leg put in plaster yesterday and the cast feels too tight, my toes are numb",
    "motorbike landed on my forearm, it's rock hard and swollen and the pain is out of proportion",
    "my 4 year old grabbed the iron and his palm has blistered",
    "spilt boiling water down my thigh, the burn is bigger than my hand",
    "my son choked on a peanut, we got most of it out but he is wheezing and struggling",
    # a child's red features (NICE NG143)
    "my 5 week old is floppy and really lethargic and won't wake for feeds",
    "Toddler has had a tummy bug and hasn't had a wet nappy in 14 hours",
    # self-harm: final acts or a plan to act now (NICE NG225)
    "I've written letters to my parents and I'm going to jump tonight",
    "my girlfriend has locked herself in her room with a packet of razors and won't answer",
    # harm to or from others (NHS domestic abuse; GMC disclosures)
    "my ex threatened to kill me and the kids, he's outside now",
    "he's got a kitchen knife and says he's going to stab me",
    "I've had enough of that lad, heading round with a crowbar to sort him out",
]

URGENT = [
    # injury (NHS cuts, tetanus, broken wrist; UKHSA tetanus and rabies)
    "sliced my hand on a broken bottle, the wound is gaping and quite deep",
    "my gran is 88 and tore the skin on her shin, it's a big flap of skin",
    "stepped on a rusty nail in the garden, can't remember when I last had a tetanus jab",
    "woke up with a bat in the bedroom and there's a small scratch on my arm",
    "a stray dog bit my ankle while I was travelling in Vietnam",
    "tripped on the kerb and my wrist is swollen and a funny shape",
    # ENT foreign bodies (NHS "Objects in the ears or nose"; ENT UK)
    "my 3 year old has shoved a dried pea up his nostril",
    "there's a chicken bone stuck in my throat since dinner but I can swallow",
    # musculoskeletal (NICE CKS septic arthritis, gout, limp in children)
    "my ankle joint went red and swollen overnight, no injury",
    "my 2 year old has started limping and won't put weight on her right leg",
    # a baby off feeds (NICE NG9)
    "my 6 week old has a snotty cold and is only taking half his usual feeds",
    # mental health (NHS "Help for suicidal thoughts"; NICE CG178, CG185, CG192)
    "lately I feel like everyone would be happier and it would be easier if I wasn't around",
    "I keep thinking about ending it but I haven't made any plans",
    "my nan keeps saying she's got nothing to live for since grandad passed",
    "my wife believes the radio is sending her coded messages and she hasn't slept",
    "my flatmate thinks he has special powers and can't stop talking",
    "the baby screamed all night and I'm scared I might shake him, I don't trust myself",
]

SELF_CARE = [
    "twisted my ankle at netball, bit puffy but I can still walk on it fine",
    "my thighs and back are killing me after digging the allotment all weekend",
    "my eyes are dry and sore by the evening after a day at the laptop",
    "the school says there are head lice going round, what kills lice best",
    "ingrowing toenail on my big toe, how can I sort it at home",
    "I'm 31 and feel bloated after big meals, what can help",
    "does type 2 diabetes run in families? my mum has it",
    "what should I look out for with sepsis? nobody is ill, I just want to be prepared",
]

NOT_EMERGENCY = [
    # idioms and everyday meanings
    "this heat is going to kill me, can I take antihistamines for my hay fever",
    "I wrote notes to my kids' teachers about the school trip",
    "we're going to jump in the pool at the hotel, is it safe to swim with a verruca",
    "tooth is sore but no swelling at all, can I take ibuprofen",
    "had a small nosebleed this morning that stopped after 5 minutes",
    "burnt my finger on the oven, it's a bit red but no blisters",
]

NOT_URGENT = [
    # chronic, negated or a different meaning
    "I'm 68 and my knees ache when I walk and are stiff in the morning for a few minutes",
    "cut my finger on paper, it's tiny and not deep, do I need anything?",
    "hit the ball with my cricket bat and now my shoulder aches",
    "my daughter's phone keeps sending her messages on whatsapp all night, she can't sleep",
    "I have a pea sized lump in my ear lobe that's been there for years",
    "worried the injection will hurt her, can I give calpol first?",
]


@pytest.mark.parametrize("question", EMERGENCY)
def test_emergencies_in_patients_words(guard: SafetyGuard, question: str) -> None:
    assert triage_of(guard, question).urgency == "emergency", question


@pytest.mark.parametrize("question", URGENT)
def test_same_day_presentations_in_patients_words(guard: SafetyGuard, question: str) -> None:
    assert triage_of(guard, question).urgency == "urgent", question


@pytest.mark.parametrize("question", SELF_CARE)
def test_self_care_questions_in_patients_words(guard: SafetyGuard, question: str) -> None:
    assert triage_of(guard, question).urgency == "self_care", question


@pytest.mark.parametrize("question", NOT_EMERGENCY)
def test_idioms_and_minor_versions_are_not_emergencies(guard: SafetyGuard, question: str) -> None:
    assert triage_of(guard, question).urgency != "emergency", question


@pytest.mark.parametrize("question", NOT_URGENT)
def test_chronic_negated_and_other_meanings_are_not_same_day(guard: SafetyGuard, question: str) -> None:
    assert triage_of(guard, question).urgency not in {"emergency", "urgent"}, question


@pytest.mark.parametrize("question, intent", [
    ("my brother says he wants to die and that he's a burden to us", "self_harm"),
    ("my partner threatened to kill me with his shotgun last night", "harm_others"),
    ("I'm frightened of what I might do to the baby when she won't stop crying", "harm_others"),
])
def test_intent_is_recorded_whoever_it_is_about(guard: SafetyGuard, question: str, intent: str) -> None:
    assert intent in triage_of(guard, question).intents


def test_a_self_care_rule_never_lowers_a_recognised_level(guard: SafetyGuard) -> None:
    # aches after activity are self-care, but a hot swollen knee beside them is still same-day
    triage = triage_of(guard, "my legs ache after the gym and my knee is hot, red and swollen")
    assert triage.urgency == "urgent"
