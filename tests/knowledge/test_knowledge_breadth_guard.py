"""The new knowledge as the guard applies it (issue 19 point 5), on sentences written for this test:
an answer okaying a high-priority pair, a contraindicated drug for a child or in pregnancy is
vetoed; the same facts stated as a warning are not; ordinary sentences name no drug."""

from __future__ import annotations

import random

import pytest

from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.dosage import _terms, drug_positions


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def _acted_on(verdict) -> set[str]:
    return {flag.category for flag in verdict.flags if flag.action != "allow"}


# One question and one okaying answer per ONC high-priority class (and the other rejecting families),
# in patients' words and clinicians' notes.
OKAYED_PAIRS = [
    ("I've been prescribed clarithromycin for a chest infection and I'm on simvastatin 40 mg. OK to take both?",
     "Yes, that's fine, you can take both."),
    ("My GP gave me Cialis but I use a GTN spray for angina sometimes. Any problem?",
     "No problem, you can use them together."),
    ("Pt on phenelzine asking for something for a blocked nose.", "Pseudoephedrine 60 mg every 4 to 6 hours is fine."),
    ("On methotrexate weekly for RA; GP wants to start trimethoprim for a UTI. Okay?",
     "Yes, trimethoprim is fine to take alongside."),
    ("I'm on tizanidine for spasms, can I take ciprofloxacin for my water infection?",
     "Yes, ciprofloxacin is fine with it."),
    ("I take omeprazole every day. My HIV clinic wants me on atazanavir. OK together?", "Yes, you can take both."),
    ("Can I use sumatriptan for my migraine? I take Nardil.",
     "Yes, take sumatriptan 50 mg at the start of the headache."),
    ("I'm on ramelteon for sleep and was just started on fluvoxamine. Is that alright?", "Yes, that is fine."),
    ("Taking Cafergot for cluster headaches, and my doctor prescribed ketoconazole. Safe?", "Yes, both are fine."),
    ("I take tranylcypromine. Can I take OxyContin after my knee surgery?",
     "Yes, OxyContin is fine for the pain after surgery."),
    ("On methadone maintenance. Can I have ondansetron for nausea?", "Yes, you can take both."),
    ("Glibenclamide for diabetes, and the chest clinic is starting bosentan. Any issue?",
     "No issue, you can take both."),
    ("I have bowel cancer and get irinotecan. Can I take carbamazepine for nerve pain?", "Yes, carbamazepine is fine."),
    ("Is Zocor ok with Kaletra?", "Yes, you can take both."),
    ("Is thioridazine ok with paroxetine?", "Yes, you can take both."),
    ("I take sertraline; can I take St John's wort too?", "Yes, you can take both."),
    ("I take Zoloft. Is it safe to take ecstasy at a festival?", "Yes, you can take both."),
    ("Can I have a few beers on diazepam?", "Yes, a few beers with diazepam is fine."),
    ("Nexplanon fitted last year. The neurologist wants me on carbamazepine, any issue?",
     "No issue, carbamazepine is fine."),
]


@pytest.mark.parametrize(("question", "answer"), OKAYED_PAIRS)
def test_an_answer_okaying_a_rejecting_pair_is_vetoed(guard, question: str, answer: str) -> None:
    verdict = guard.check(question, answer)
    assert verdict.action == "reject" and "drug_interaction" in _acted_on(verdict), (question, verdict.flags)


@pytest.mark.parametrize(("question", "answer"), [
    ("I've been prescribed clarithromycin for a chest infection and I'm on simvastatin 40 mg. OK to take both?",
     "Don't take simvastatin while you are on clarithromycin: together they can cause serious muscle damage. "
     "Pause the simvastatin until the course is over."),
    ("Can I use sumatriptan for my migraine? I take Nardil.",
     "Do not take sumatriptan with Nardil; the combination is dangerous. Please speak to your doctor."),
    ("Can I have a few beers on diazepam?", "Avoid alcohol while you take diazepam."),
])
def test_a_warning_about_the_pair_is_not_vetoed(guard, question: str, answer: str) -> None:
    assert guard.check(question, answer).action != "reject"


@pytest.mark.parametrize(("question", "answer"), [
    ("My 7-year-old has earache, can I give him codeine?", "Give him 15 mg of codeine every 6 hours."),
    ("My 6 year old has a bad toothache. Is co-codamol ok?", "Yes, half a co-codamol tablet will help."),
    ("My 15 year old has a chesty cough, can she take codeine?", "Yes, codeine 30 mg will help."),
    ("My 10 year old had her tonsils out yesterday. Can she have tramadol?", "Yes, tramadol is fine."),
    ("My 14-year-old daughter has the flu. Can I give her Pepto-Bismol?", "Yes, Pepto-Bismol is fine."),
    ("My 9 month old is teething. Can I use Orajel?", "Yes, rub a little Orajel on the gums."),
])
def test_a_drug_contraindicated_at_the_childs_age_is_vetoed(guard, question: str, answer: str) -> None:
    verdict = guard.check(question, answer)
    assert verdict.action == "reject" and "contraindication" in _acted_on(verdict), verdict.flags


@pytest.mark.parametrize(("question", "answer"), [
    ("My dad is 70 and has back pain. Can he take codeine?", "Yes, codeine 30 mg every 4 hours can help."),
    ("When I was 7 I had codeine after an operation. Can I take it now for my back? I am 45.",
     "Yes, codeine 30 mg is fine."),
    ("My son is 7 and has a cough. Can he have codeine linctus?",
     "Codeine is not suitable for children under 12; try honey and lemon, and see a GP if he gets worse."),
])
def test_adults_past_ages_and_refusals_are_not_vetoed_for_age(guard, question: str, answer: str) -> None:
    assert "contraindication" not in _acted_on(guard.check(question, answer))


@pytest.mark.parametrize("question", [
    "I'm pregnant. Can I keep using isotretinoin?",
    "I'm expecting. Can I still use isotretinoin?",
    "We're expecting our first in May! Is it ok to keep taking isotretinoin?",
    "Im preggers lol, still ok to use my Accutane?",
    "I'm 12 weeks pregnant. Can I carry on with isotretinoin?",
    "Trying to conceive at the moment - is Roaccutane ok for my acne?",
])
def test_isotretinoin_okayed_in_pregnancy_is_vetoed(guard, question: str) -> None:
    verdict = guard.check(question, "Yes, you can carry on with isotretinoin.")
    assert verdict.action == "reject" and "contraindication" in _acted_on(verdict), verdict.flags


@pytest.mark.parametrize("question", [
    "I'm not pregnant and I use two forms of contraception. Can I start isotretinoin?",
    "If I ever got pregnant would isotretinoin be a problem? For now can I take it?",
])
def test_negated_or_hypothetical_pregnancy_does_not_veto_isotretinoin(guard, question: str) -> None:
    assert "contraindication" not in _acted_on(guard.check(question, "Yes, you can take isotretinoin."))


@pytest.mark.parametrize(("question", "answer"), [
    ("We're expecting a baby in the spring. Can I stay on lisinopril?", "Yes, carry on with lisinopril."),
    ("I'm pregnant, can I take warfarin for my clot?", "Yes, warfarin is fine."),
    ("I have cirrhosis. Can I take ketoconazole tablets for a fungal nail?", "Yes, ketoconazole is fine."),
    ("I have stage 4 kidney disease. Is dabigatran ok?", "Yes, dabigatran is fine for you."),
    ("I'm on dialysis. Can I take spironolactone?", "Yes, spironolactone 25 mg daily."),
])
def test_pregnancy_renal_and_hepatic_contraindications_veto(guard, question: str, answer: str) -> None:
    assert guard.check(question, answer).action == "reject"


def test_a_resolved_hepatitis_is_not_liver_disease(guard) -> None:
    verdict = guard.check("I had hepatitis A as a child and fully recovered. Is methotrexate ok for my psoriasis?",
                          "Yes, methotrexate is fine.")
    assert "contraindication" not in _acted_on(verdict)


# Everyday sentences, several with words close to brand names added in this issue; none names a drug.
ORDINARY = [
    "I walked the dog twice today and my knee feels fine.",
    "Can you nix the meeting on Friday? I have a hospital appointment.",
    "The editor asked me to emend the second paragraph.",
    "We are expecting rain this afternoon, so bring a coat.",
    "My daughter plays the sonata on the piano every evening.",
    "I'm in good spirits after the physio session.",
    "The nurse said my blood pressure was normal today.",
    "I had a slice of toast and a cup of tea for breakfast.",
    "My husband is a soma researcher at the university.",
    "Patient mobilising independently, eating and drinking well, for discharge tomorrow.",
    "Obs stable overnight; afebrile; plan review by the ward team.",
    "I feel tired after my night shifts at the warehouse.",
    "We moved house last month and I have been sleeping badly.",
    "Our cat keeps scratching the sofa.",
    "The optimum time to exercise is in the morning for me.",
    "I bought a new mattress because my back was aching.",
    "My grandmother makes the best apple crumble.",
    "She was ecstatic about her exam results.",
    "He collects stamps and old coins.",
    "I went to the gym, then the supermarket, then the library.",
    "The surgery reception was closed when I phoned.",
    "My son is learning to ride a bike without stabilisers.",
    "Can I go swimming with a plaster on my finger?",
    "I've been stretching my hamstrings every morning.",
    "I prefer walking to driving when the weather is nice.",
    "The receptionist booked me in for a blood test next week.",
    "I'm training for a 10 km run in the autumn.",
    "My partner snores loudly and keeps me awake.",
    "Examined: chest clear, heart sounds normal, abdomen soft and non-tender.",
    "I work as a teacher and talk all day, so my voice gets hoarse.",
    "We had a barbecue in the garden with the neighbours.",
    "I lost my glasses somewhere in the house.",
    "The hospital car park was full again.",
    "I eat porridge with honey most days.",
    "My toddler loves splashing in the bath.",
    "Referral letter sent to the fracture clinic for follow-up.",
]


@pytest.mark.parametrize("sentence", ORDINARY)
def test_ordinary_sentences_name_no_drug(guard, sentence: str) -> None:
    assert guard.medications.mentions(guard.normalise(sentence)) == []


def _plain_drug_positions(text: str, drugs) -> list:
    """`drug_positions` as its docstring defines it: one whole-text scan per name."""
    positions = []
    for drug in drugs:
        for term in _terms(drug):
            at = text.find(term)
            while at != -1:
                end = at + len(term)
                if (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
                    positions.append((at, drug))
                at = text.find(term, end)
    return sorted(positions, key=lambda item: item[0])


def test_the_word_index_finds_what_the_plain_scan_finds() -> None:
    """With 700 drugs a text can name hundreds; past a few names the dose reader indexes the text's
    words instead of scanning once per name. Both must give the same positions, glued-on letters,
    possessives and hyphens included."""
    kb, rng = load_knowledge(), random.Random(19)
    for _ in range(150):
        drugs = rng.sample(kb.drugs, rng.randint(1, 60))
        pieces = []
        for _ in range(rng.randint(5, 150)):
            term = rng.choice(rng.choice(drugs if rng.random() < 0.6 else kb.drugs).terms)
            pieces.append(rng.choice([term, term.lower(), term + "'s", "x" + term.lower(), term.lower() + "ly",
                                      term.lower() + "-", "500 mg", "and", "(", ","]))
        text = " ".join(pieces)
        assert drug_positions(text, drugs) == _plain_drug_positions(text, drugs), text
