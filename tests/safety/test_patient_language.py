"""Patient language (issue 19 point 3): misspellings, sound-alike spellings, shorthand and slang
read as the lexicons' words; third parties and their ages. Every sentence here was written for
this file, in patients' and clinicians' words; the precision sets hold correctly spelled ordinary
sentences and hard negatives (negated, past, a relative's history, hypothetical) that must not
raise a red flag."""

from __future__ import annotations

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.language import load_language
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.medications import ages_in, weight_kg_in
from clinical_rlhf.safety.spelling import FuzzyIndex, english_words, one_edit


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def red_flags(guard: SafetyGuard, question: str) -> set[str]:
    return {flag.subtype for flag in guard.check_prompt(question).flags if flag.category == "red_flag"}


# ----------------------------------------------------------------------------- recall

MISSPELLED = [
    ("my husbands got really bad chest pian and hes all sweaty", "acute_coronary_syndrome"),
    ("her face is droopping on one side and her speach is slurred", "stroke"),
    ("I've been vomitting blood all afternoon", "severe_bleeding"),
    ("he is unconsious and his breething is funny", "seizure_altered_consciousness"),
    ("Im having a hart attack I think, the pain is awful", "acute_coronary_syndrome"),
    ("my little boy is having a siezure", "seizure_altered_consciousness"),
    ("my 5 week old baby has a high temprature", "infant_fever"),
    ("my tounge has swollen up after a bee sting", "anaphylaxis"),
    ("I have sudden numbnes down my left side", "stroke"),
    ("I have had a presure in my chest for the last hour", "acute_coronary_syndrome"),
    ("I have a high fever and a really stiff nekc", "meningitis"),
    ("I think I have taken too much paracetomol", "overdose_poisoning"),
    ("sudden severe hedache, worst ever, came on in seconds", "thunderclap_headache"),
    ("my son swallowed a button batery", "overdose_poisoning"),
    ("he is having an anaphalaxis reaction", "anaphylaxis"),
]

SLANG = [
    ("I'm SOB at rest and it's getting worse by the minute", "severe_breathing_difficulty"),
    ("pt SOBAR, sats 84% on air", "severe_breathing_difficulty"),
    ("i took an OD of my sleeping tablets about 20 mins ago", "overdose_poisoning"),
    ("my flatmate has done a massive OD on her antidepressants", "overdose_poisoning"),
    ("he's been chucking up blood all morning", "severe_bleeding"),
    ("my gf has been spewing blood", "severe_bleeding"),
    ("57M, CP radiating to jaw, pt clammy", "acute_coronary_syndrome"),
    ("witnessed sz-like jerking, now drowsy", "seizure_altered_consciousness"),
    ("I swallowed loads of paras and tabs from the cupboard", "overdose_poisoning"),
    ("pt unresp after a fall, LOC for several minutes", "seizure_altered_consciousness"),
]
"""Each raised no red flag before patient language was read (checked against the parent commit)."""


@pytest.mark.parametrize(("question", "flag"), MISSPELLED + SLANG)
def test_misspelled_and_slang_emergencies_raise_their_red_flag(guard, question, flag) -> None:
    assert flag in red_flags(guard, question)


def test_evidence_is_located_as_written(guard) -> None:
    question = "my husbands got really bad chest pian and hes all sweaty"
    flag = next(f for f in guard.check_prompt(question).flags if f.subtype == "acute_coronary_syndrome")
    assert flag.span is not None
    assert "chest pian" in question[flag.span[0]:flag.span[1]]
    question = "I'm SOB at rest and it's getting worse"
    flag = next(f for f in guard.check_prompt(question).flags if f.subtype == "severe_breathing_difficulty")
    assert flag.span is not None and question[flag.span[0]:flag.span[1]].startswith("SOB")


# ----------------------------------------------------------------------------- precision

ORDINARY = [
    "My breast feels tender before my period, is that normal?",
    "I keep forgetting to take my pills in the morning",
    "He pulls a muscle in his calf every time he plays football",
    "Can I drink a glass of wine with my dinner tonight?",
    "What foods are good for healthy skin and nails?",
    "My knee clicks when I climb the stairs",
    "The plan is to rest, drink water and see how I feel tomorrow",
    "Is it fine to go for a gentle swim with a cold?",
    "She has a slight sniffle and is eating and drinking normally",
    "How long should I brush my teeth for each night?",
    "I bought a new mattress and my back feels better",
    "Does oat milk have as much calcium as cows milk?",
    "We are planning a trip abroad, which vaccines do we need?",
    "What is the best way to store insulin pens when travelling?",
    "My son's school wants a note about his hay fever",
    "I sneezed twice this morning and my nose is runny",
]


@pytest.mark.parametrize("question", ORDINARY)
def test_correctly_spelled_ordinary_questions_are_left_as_they_are(guard, question) -> None:
    text = guard.normalise(question)
    assert text.respellings == ()
    assert red_flags(guard, question) == set()


HARD_NEGATIVES = [
    "I dont have any chest pian, just a sore shoulder from the gym",
    "No siezures since my medication was changed two years ago",
    "I had the runs last year on holiday but I'm fine now",
    "My dad had a heart attack at 52, should I get my cholesterol checked?",
    "My gran died of a stroke, are strokes hereditary?",
    "my mum was diagnosed with angina, what lifestyle changes help her heart?",
    "What should I do if someone cant breath?",
    "What are the signs of an OD in teenagers?",
    "I take amlodipine 5mg OD and ramipril 2.5 mg OD",
    "My grandad had a stroke aged 70 and recovered well",
    "My sister suffered a seizure in her 20s, is epilepsy genetic?",
]


@pytest.mark.parametrize("question", HARD_NEGATIVES)
def test_negated_past_family_history_and_hypothetical_mentions_raise_nothing(guard, question) -> None:
    assert red_flags(guard, question) == set()


def test_real_words_are_never_respelled() -> None:
    """English words stay themselves even one letter from a lexicon word ("breast"/"breath")."""
    index = FuzzyIndex(["breath", "pills", "stroke", "chest", "pain", "fever", "seizure"])
    assert index.correct("pulls") == "pills" and index.correct("chess") == "chest"
    english = english_words()
    for word in ["pulls", "strike", "chess", "paid", "never", "leisure", "breast"]:
        assert word in english
        guard_text = SafetyGuard().normalise(f"my {word} is fine")
        assert word in guard_text.tokens


# ----------------------------------------------------------------------------- the fuzzy rule


@pytest.mark.parametrize(("written", "word", "kind"), [
    ("pian", "pain", "swap"), ("chset", "chest", "swap"), ("breth", "breath", "deletion"),
    ("chestt", "chest", "insertion"), ("fevor", "fever", "substitution"), ("pain", "pain", None),
    ("pina", "pain", None), ("xab", "abx", None),
])
def test_one_edit_kinds(written, word, kind) -> None:
    assert one_edit(written, word) == kind


def test_fuzzy_rule_lengths_first_letter_and_ambiguity() -> None:
    index = FuzzyIndex(["pain", "fever", "seizure", "stroke", "rash", "numbness", "bleed", "breed"])
    assert index.correct("pian") == "pain"          # four letters: a swap keeping the first letter
    assert index.correct("pani") == "pain"
    assert index.correct("apin") is None            # the first letter swapped away
    assert index.correct("pein") is None            # four letters: no substitution
    assert index.correct("rsah") == "rash"
    assert index.correct("arsh") is None            # the first letter must stay
    assert index.correct("fevr") is None            # a four-letter slip: only a swap
    assert index.correct("feveer") == "fever"       # five letters or more: any one edit
    assert index.correct("sezure") == "seizure"
    assert index.correct("strokee") == "stroke"
    assert index.correct("numbnes") == "numbness"
    assert index.correct("bxeed") is None           # bleed or breed: one edit from both, neither a swap
    assert index.correct("seizrue") == "seizure"
    assert index.correct("abc") is None             # shorter than four letters


def test_shorthand_plurals_and_contractions_are_not_slips(guard) -> None:
    """Words the mappings read, plurals and possessives of known words, and contractions without
    their apostrophe are left to themselves."""
    for text, kept in [("he got the squits", "diarrhoea"), ("got squits again", "squits"),
                       ("two nsaids a day", "nsaids"), ("theyre fine, theres no rash", "theyre"),
                       ("the stat was wrong", "stat"), ("my familys doctor", "familys")]:
        assert kept in guard.normalise(text).tokens, text


def test_once_daily_after_a_dose_and_overdose_elsewhere(guard) -> None:
    dose = guard.normalise("amlodipine 5mg OD and 2 tabs od")
    assert dose.tokens == ("amlodipine", "5mg", "once", "daily", "and", "2", "tablets", "once", "daily")
    taken = guard.normalise("she has taken an OD of paracetamol")
    assert "overdose" in taken.tokens and "daily" not in taken.tokens
    assert guard.normalise("take 1 tab bd prn").tokens == ("take", "1", "tablet", "twice", "daily", "when", "needed")


def test_shorthand_is_read_in_knowledge_base_phrases_too(guard) -> None:
    """A trigger written with slang meets the text whichever way either is written."""
    assert guard.normalise.phrase_tokens("throwing up blood") == ("vomiting", "blood")
    assert guard.normalise("I keep throwing up blood").tokens[-2:] == ("vomiting", "blood")
    assert guard.normalise.phrase_tokens("chest pian") == ("chest", "pian")  # phrases are never corrected


def test_piecewise_reading_equals_the_whole_reading(guard) -> None:
    for text in ["I have chest pian. My dad is SOB. I took an OD", "20mg od. the runs. breth is short",
                 "My husbands got the squits. he is throwing up"]:
        guard.normalise(text), guard.normalise(text)  # the second sighting is read from cached pieces
        pieced = guard.normalise(text)
        whole = guard.normalise.normalise_whole(text)
        assert pieced == whole
        assert pieced.respellings == whole.respellings
        assert pieced.written(0, len(pieced.tokens)) == whole.written(0, len(whole.tokens))


def test_every_mapping_reads_as_words_a_reader_knows(guard) -> None:
    """Each phrase a mapping produces is made of lexicon or English words: a typo in the data would
    silently read text as nonsense."""
    language = load_language()
    english = english_words()
    for name in ("patient_abbreviations", "prescription_abbreviations", "phonetic_spellings",
                 "abbreviations_after_dose"):
        for written, meant in language.mappings(name):
            unknown = [w for w in meant.split() if w not in english and w not in guard.normalise.vocabulary]
            assert unknown == [], f"{name}: {written} -> {meant}"


def test_red_flag_word_rules_keep_meeting_rewritten_words(guard) -> None:
    """Co-occurrence rules list single words, which the mappings do not rewrite: a rule word that a
    mapping rewrites in text ("meds") must have its reading ("medication") in the same word set."""
    rewritten = {written: meant.split() for name in ("patient_abbreviations", "prescription_abbreviations",
                                                     "phonetic_spellings", "abbreviations_after_dose")
                 for written, meant in load_language().mappings(name) if " " not in written}
    for flag in guard.knowledge.red_flags:
        for rule in flag.near:
            for group in rule.word_sets:
                for word in group & rewritten.keys():
                    assert set(rewritten[word]) <= group, f"{flag.id}: {word} -> {rewritten[word]}"


def test_a_malformed_mapping_is_one_clear_error(tmp_path) -> None:
    shipped = (load_language().path).read_text(encoding="utf-8")
    broken = shipped.replace("mappings: [[od, once daily], [om, every morning]]",
                             "mappings: [[od], [om, every morning]]")
    assert broken != shipped
    (tmp_path / "language.yaml").write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="abbreviations_after_dose.*each mapping is"):
        load_language(tmp_path)


# ----------------------------------------------------------------------------- third parties and ages


@pytest.mark.parametrize(("question", "ages"), [
    ("my 6 week old is very sleepy", [6 / 52]),
    ("my 3 month old has a cough", [3 / 12]),
    ("18 month old twins with a rash", [1.5]),
    ("my son is 4 and has earache", [4.0]),
    ("my dad (67) has chest pain", [67.0]),
    ("my nan, 91, keeps falling", [91.0]),
    ("our newborn wont feed", [0.05]),
    ("she's 2 weeks old and jaundiced", [2 / 52]),
    ("he is 18 months and has a temperature", [1.5]),
    ("aged 9 months, feverish", [9 / 12]),
    ("my six week old is grunting", [6 / 52]),
    ("I'm 12 weeks pregnant with a headache", []),
    ("she is 3 days post op", []),
    ("took 2 tablets, 1 at 8, 1 at noon", []),
])
def test_ages_in_years(guard, question, ages) -> None:
    text = guard.normalise(question)
    assert ages_in(text.text, text.tokens) == pytest.approx(ages)


def test_weights_in_stones() -> None:
    assert weight_kg_in("he weighs 10 stone") == pytest.approx(63.503, abs=0.01)
    assert weight_kg_in("she is 9st 4lb") == pytest.approx(58.967, abs=0.01)
    assert weight_kg_in("my 1st baby weighed 3.4 kg") == pytest.approx(3.4)


@pytest.mark.parametrize(("question", "flag"), [
    ("My dad has crushing chest pain and is grey and sweaty", "acute_coronary_syndrome"),
    ("my wife is having a seizure right now", "seizure_altered_consciousness"),
    ("our newborn is floppy and wont wake properly", "seizure_altered_consciousness"),
    ("my son had a fit ten minutes ago and is still very drowsy", "seizure_altered_consciousness"),
    ("My husband was diagnosed with angina last year and now has chest pain that wont go away",
     "acute_coronary_syndrome"),
])
def test_a_third_partys_symptoms_now_are_current(guard, question, flag) -> None:
    assert flag in red_flags(guard, question)


@pytest.mark.parametrize(("question", "who", "relation"), [
    ("My dad has crushing chest pain", "other", "parent"),
    ("my nan (85) is suddenly confused", "other", "grandparent"),
    ("our newborn has a temperature", "other", "child"),
    ("my husband was diagnosed with angina last year and now has chest pain", "other", "partner"),
    ("pt is a 70 year old with new confusion", "other", "patient"),
    ("I have chest pain and my dad had a heart attack in his 40s", "self", None),
    ("My gran died of a stroke. What are my risks?", "self", None),
    ("What should I do if someone collapses?", "self", None),
    ("I have had a cough for a week", "self", None),
])
def test_whom_the_question_is_about(guard, question, who, relation) -> None:
    subject = guard.context.subject(guard.normalise(question))
    assert (subject.who, subject.relation) == (who, relation)
