"""Urgency triage of a question (`SafetyGuard.triage`, `safety/triage.py`, `triage.yaml`): every
level, the modifiers that raise it, the readings that must not count (negated, past, someone
else's history, hypothetical), the fail-safe, conversations, and the data file's validation.
Questions are written for these tests, in patients' and clinicians' words."""

from __future__ import annotations

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.triage_data import URGENCY_LEVELS, load_triage
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.triage import URGENCIES, TriageReader, TriageReason


def reason_ids(triage) -> set[str]:
    return {reason.id for reason in triage.reasons}


EMERGENCY = [
    "My dad has crushing chest pain going into his left arm and he is grey and sweaty",
    "Fell off a ladder and the bone is sticking out of my shin",
    "Splashed oven cleaner in my eye five minutes ago and it is agony",
    "My 7 week old baby feels feverish and is not himself",
    "I'm having chemo for breast cancer and have been shivery with a fever since lunchtime",
    "I had my spleen removed after a car crash and now I have a fever and feel awful",
    "Pulled a pan of boiling water over and my toddler has a burn bigger than his hand on his chest",
    # Cannot swallow saliva (drooling) with a muffled voice: airway compromise, admit now (NICE NG84).
    "Sore throat and now I can't swallow my saliva and my voice sounds muffled",
]

URGENT = [
    "I've had cystitis for 2 days and now I have a high temperature and pain in my back under my ribs",
    "Came off my bike and I can't put any weight on my ankle, I heard a crack",
    "My left eye is red and painful and my vision is blurry since this morning",
    "My 18 month old has had diarrhoea since yesterday and hasn't had a wet nappy since breakfast",
    "The redness round the cut on my leg is spreading and it's hot and swollen",
    "Painful band of blisters on one side of my back, started 2 days ago",
    "Dog bit my hand on a walk and it broke the skin",
    "Woke up this morning and suddenly can't hear out of one ear",
    "The condom split last night, where can I get the morning after pill?",
    "I'm 34 weeks pregnant and my palms and soles are really itchy, worse at night",
    "I'm 79 and think I have a chest infection, coughing up green stuff",
    "I'm on tacrolimus after a kidney transplant and I've got a temperature",
    "I'm on metformin and gliclazide and have had diarrhoea since yesterday and can't eat",
    "My 4 month old has a high temperature and is grizzly",
    "Been vomiting for 3 days and can't keep water down",
    # A head injury on an anticoagulant with no other warning sign: CT within 8 hours (NICE NG232).
    "Tripped on the stairs and banged my head, I take apixaban for AF",
    # Men get an immediate antibiotic and a urine culture, not a back-up prescription (NICE NG109).
    "My husband keeps needing to wee and it burns when he pees",
]

ROUTINE = [
    "I've had a hoarse voice for 5 weeks now",
    "Found a pea-sized lump in my left armpit last week",
    "Can I have a medication review? I'm on six different tablets",
    "My knee pain has been getting worse with arthritis, what are my options?",
    "Is it worth seeing someone about my heavy periods?",
    "What's the maximum dose of ibuprofen for an adult?",
]

SELF_CARE = [
    "I've got a stinking cold and a blocked nose, anything I can take?",
    "What's best for hay fever, I'm sneezing all day",
    "Twisted my ankle playing football, it's a bit swollen but I can walk on it",
    "Bitten by mosquitoes on holiday and the bites are so itchy",
    "Had diarrhoea since yesterday after a takeaway, otherwise I feel ok",
    "Scratchy sore throat since Sunday, no other symptoms",
    "Got a cold sore coming on my lip",
    "My 6 year old has head lice again",
    "I'm 28 and not pregnant. It stings when I wee and I need to go all the time",
]


@pytest.mark.parametrize(("level", "questions"), [("emergency", EMERGENCY), ("urgent", URGENT),
                                                 ("routine", ROUTINE), ("self_care", SELF_CARE)])
def test_each_level(guard: SafetyGuard, level: str, questions: list[str]) -> None:
    wrong = {question: guard.triage(question).urgency for question in questions
             if guard.triage(question).urgency != level}
    assert not wrong, wrong


def test_urgency_is_the_most_urgent_reason_and_each_reason_names_its_source(guard: SafetyGuard) -> None:
    triage = guard.triage("Sneezing and a runny nose for 2 days, and now a lump on my neck too")
    assert triage.urgency == "routine"
    assert [reason.id for reason in triage.reasons] == ["common_cold_or_flu_like", "lump_or_possible_cancer_sign"]
    assert all(reason.source and reason.detail for reason in triage.reasons)
    levels = [reason.urgency for reason in triage.reasons]
    assert max(levels, key=URGENCIES[::-1].index) == triage.urgency
    red = guard.triage("I've got a cold and now crushing central chest pain")
    assert red.urgency == "emergency"
    acs = next(reason for reason in red.reasons if reason.kind == "red_flag")
    assert acs.id == "acute_coronary_syndrome" and acs.evidence in "I've got a cold and now crushing central chest pain"


def test_evidence_is_the_questions_own_words(guard: SafetyGuard) -> None:
    question = "Honestly I think I've BROKEN my wrist, it's bent"
    reason = next(r for r in guard.triage(question).reasons if r.id == "possible_fracture")
    assert reason.evidence in question and "BROKEN" in reason.evidence


@pytest.mark.parametrize(("question", "not_level", "rule"), [
    # negated
    ("No fever, no shivering, just a bit of stinging when I pee", "urgent", "kidney_infection"),
    ("I don't think anything is broken, I can walk on it fine", "urgent", "possible_fracture"),
    ("Baby is 6 weeks old, no temperature, just a bit snuffly", "emergency", "fever_under_3_months"),
    # past, or someone else's history
    ("I broke my wrist years ago and it aches in cold weather", "urgent", "possible_fracture"),
    ("Finished chemotherapy in 2016, now I have a temperature and a cough", "emergency", "chemotherapy_fever"),
    ("My mum had a kidney infection last year; I just have a runny nose", "urgent", "kidney_infection"),
    # hypothetical or educational
    ("What are the signs of a kidney infection?", "urgent", "kidney_infection"),
    ("If I'm on chemo and get a fever, what should I do?", "emergency", "chemotherapy_fever"),
    ("How do you know if a bone is broken or just bruised?", "urgent", "possible_fracture"),
])
def test_hard_negatives_do_not_raise_the_level(guard: SafetyGuard, question: str, not_level: str, rule: str) -> None:
    triage = guard.triage(question)
    assert rule not in reason_ids(triage), triage
    assert triage.urgency != not_level or any(reason.id != rule for reason in triage.reasons
                                              if reason.urgency == not_level), triage


def test_self_care_counts_in_general_questions_but_urgent_rules_do_not(guard: SafetyGuard) -> None:
    assert guard.triage("What is good for hay fever?").urgency == "self_care"
    assert guard.triage("What are the symptoms of shingles?").urgency == "routine"  # nothing of the person's


def test_nothing_recognised_is_the_documented_default(guard: SafetyGuard) -> None:
    triage = guard.triage("Can you tell me about the history of vaccination?")
    data = load_triage()
    assert triage.urgency == data.default_urgency == "routine"
    assert [(reason.kind, reason.id) for reason in triage.reasons] == [("default", "nothing_recognised")]
    assert "clinician" in triage.reasons[0].detail


def test_modifiers_raise_what_they_come_with(guard: SafetyGuard) -> None:
    plain = guard.triage("I've got a fever and aches")
    assert plain.urgency == "self_care"
    assert guard.triage("I've got a fever and aches and I'm on chemo").urgency == "emergency"
    assert guard.triage("I've got a fever and aches, I'm 82").urgency == "urgent"
    assert guard.triage("I've got a fever and aches, I'm 42").urgency == "self_care"
    assert guard.triage("My daughter is 3 weeks old and has a fever").urgency == "emergency"
    assert guard.triage("My daughter is 2 years old and has a fever").urgency == "self_care"
    pregnant = guard.triage("I'm 20 weeks pregnant and burning when I pee")
    assert pregnant.urgency == "urgent" and "pregnancy_warning_symptoms" in reason_ids(pregnant)
    assert next(r for r in pregnant.reasons if r.id == "pregnancy_warning_symptoms").kind == "modifier"
    assert guard.triage("Not pregnant. Burning when I pee").urgency == "self_care"
    assert "head_injury_on_anticoagulant" not in reason_ids(guard.triage("Bumped my head, I'm not on blood thinners"))
    assert "head_injury_on_anticoagulant" in reason_ids(guard.triage("Bumped my head, I'm on blood thinners"))


def test_check_and_check_prompt_carry_the_questions_triage(guard: SafetyGuard) -> None:
    question = "My eye is red and painful and my vision is blurry"
    verdict = guard.check(question, "Try some eye drops from the pharmacy.")
    assert verdict.triage == guard.triage(question) and verdict.triage.urgency == "urgent"
    assert verdict.to_dict()["urgency"] == "urgent"
    prompt_verdict = guard.check_prompt(question)
    assert prompt_verdict.triage.urgency == "urgent" and prompt_verdict.action == "allow"
    red = guard.check_prompt("Sudden crushing chest pain")
    assert red.action == "escalate" and red.triage.urgency == "emergency"
    assert [f.subtype for f in red.flags] == [r.id for r in red.triage.reasons if r.kind == "red_flag"]


def test_conversations_keep_earlier_symptoms_and_drop_resolved_red_flags(guard: SafetyGuard) -> None:
    talk = [{"role": "user", "content": "I'm on chemo at the moment."},
            {"role": "assistant", "content": "Thanks for telling me."},
            {"role": "user", "content": "I've got a sore throat and a runny nose."}]
    assert guard.check_conversation_prompt(talk).triage.urgency == "self_care"  # fever-free: nothing raised
    later = talk + [{"role": "assistant", "content": "Ok."}, {"role": "user", "content": "Now I've got a fever too."}]
    assert guard.check_conversation_prompt(later).triage.urgency == "emergency"
    resolved = [{"role": "user", "content": "I had chest pain earlier"},
                {"role": "user", "content": "It has gone now. I also have a cold."}]
    verdict = guard.check_conversation(resolved, "Rest and fluids.")
    assert verdict.triage.urgency == "self_care"
    assert "acute_coronary_syndrome" not in reason_ids(verdict.triage)


def test_fail_safe_for_unreadable_questions() -> None:
    from clinical_rlhf.config import SafetyConfig

    short = SafetyGuard(config=SafetyConfig(max_text_chars=1_000))
    triage = short.triage("a cold " * 400)
    assert triage.urgency == "emergency"
    assert [(r.kind, r.id) for r in triage.reasons] == [("guard_error", "input_too_long")]
    assert short.check_prompt("a cold " * 400).triage == triage
    broken = SafetyGuard()
    broken._triage_reader = None  # any internal error
    failed = broken.triage("I have a cold")
    assert failed.urgency == "emergency" and failed.reasons[0].kind == "guard_error"
    assert broken.triage(None).urgency == "emergency"  # type: ignore[arg-type]
    verdict = broken.check("I have a cold", "Rest.")
    assert verdict.action == "reject" and verdict.triage.urgency == "emergency"


def test_extra_readers_add_their_reasons(guard: SafetyGuard) -> None:
    def news2(text, ages):
        if "rr 28" in text.text:
            return [TriageReason("score", "news2", "emergency", "RR 28", "NEWS2 7", "RCP NEWS2 (2017)")]
        return []

    reader = TriageReader(load_triage(), guard.context, guard._tokenize, readers=(news2,))
    question = "74F, productive cough, RR 28"
    text = guard.normalise(question)
    triage = reader.read(question, text, [], [74.0])
    assert triage.urgency == "emergency" and "news2" in reason_ids(triage)
    assert reader.read("I have a cold", guard.normalise("I have a cold"), [], []).urgency == "self_care"


def test_levels_match_the_triage_types() -> None:
    assert URGENCY_LEVELS == URGENCIES


def test_every_rule_has_a_source_and_a_known_level() -> None:
    data = load_triage()
    assert len(data.rules) >= 40
    assert {rule.urgency for rule in data.rules} == set(URGENCIES)
    assert {rule.kind for rule in data.rules} == {"symptom", "modifier", "intent"}
    assert all(rule.source and rule.name and rule.triggers for rule in data.rules)


@pytest.mark.parametrize(("body", "message"), [
    ("default_urgency: soon\ndefault_reason: x\nrules: []\n", "default_urgency"),
    ("default_urgency: routine\nrules: []\n", "default_reason"),
    ("default_urgency: routine\ndefault_reason: x\nrules:\n- {id: a, name: A, kind: symptom, urgency: later, "
     "triggers: [x], source: s}\n", "`urgency` must be one of"),
    ("default_urgency: routine\ndefault_reason: x\nrules:\n- {id: a, name: A, kind: symptom, urgency: urgent, "
     "trigger_groups: [nope], source: s}\n", "unknown group(s) nope"),
    ("default_urgency: routine\ndefault_reason: x\nrules:\n- {id: a, name: A, kind: intent, urgency: urgent, "
     "triggers: [x], source: s}\n", "`intent`"),
    ("default_urgency: routine\ndefault_reason: x\nrules:\n- {id: a, name: A, kind: symptom, urgency: urgent, "
     "triggers: [x], source: s, colour: red}\n", "`colour` is unknown"),
    ("rules: [\n", "is not valid YAML at line"),
    ("default_urgency: routine\n\udcff\n", "is not UTF-8 text"),
])
def test_a_malformed_triage_file_is_one_clear_error(tmp_path, body: str, message: str) -> None:
    (tmp_path / "triage.yaml").write_bytes(body.encode("utf-8", "surrogateescape"))
    with pytest.raises(ConfigError, match="triage") as raised:
        load_triage(tmp_path)
    assert message in str(raised.value) and str(tmp_path) in str(raised.value)


def test_a_knowledge_directory_may_bring_its_own_triage_file(tmp_path) -> None:
    (tmp_path / "triage.yaml").write_text(
        "default_urgency: urgent\ndefault_reason: Local policy sees every unplaced question the same day.\n"
        "rules:\n- {id: itchy_ears, name: Itchy ears, kind: symptom, urgency: self_care, triggers: [itchy ears],"
        " source: local policy}\n")
    from clinical_rlhf.config import SafetyConfig

    local = SafetyGuard(config=SafetyConfig(knowledge_dir=tmp_path))
    assert local.triage("I have itchy ears").urgency == "self_care"
    assert local.triage("Tell me about the weather").urgency == "urgent"
