"""The shipped knowledge base: coverage the issue asks for, lookups, and validation errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge import load_knowledge, normalise_term, shipped_directory


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def test_at_least_150_drugs_each_sourced_with_consistent_doses(kb) -> None:
    assert len(kb.drugs) >= 150
    assert len({drug.name for drug in kb.drugs}) == len(kb.drugs)
    with_max = [drug for drug in kb.drugs if drug.max_daily_mg]
    assert len(with_max) >= 150
    for drug in kb.drugs:
        assert drug.source.strip() and drug.classes, drug.name
        if drug.max_single_mg and drug.max_daily_mg:
            assert drug.max_single_mg <= drug.max_daily_mg, drug.name
    assert sum(bool(drug.brands) for drug in kb.drugs) >= 140


@pytest.mark.parametrize(("written", "generic"), [
    ("Advil", "ibuprofen"), ("TYLENOL", "paracetamol"), ("acetaminophen", "paracetamol"),
    ("Co-Trimoxazole", "co-trimoxazole"), ("co trimoxazole", "co-trimoxazole"), ("St John's wort", "st johns wort"),
    ("GTN", "glyceryl trinitrate"), ("glyburide", "glibenclamide"), ("Zocor", "simvastatin"),
])
def test_drug_lookup_by_brand_synonym_any_case(kb, written: str, generic: str) -> None:
    assert kb.drug(written).name == generic


def test_unknown_drug_is_none(kb) -> None:
    assert kb.drug("unobtainium") is None


@pytest.mark.parametrize(("a", "b", "rule_id", "severity"), [
    ("warfarin", "Advil", "warfarin+nsaid", "major"),
    ("Advil", "warfarin", "warfarin+nsaid", "major"),
    ("Viagra", "nitroglycerin", "nitrate+pde5", "contraindicated"),
    ("phenelzine", "sertraline", "maoi+serotonergic", "contraindicated"),
    ("Parnate", "pseudoephedrine", "maoi+sympathomimetic", "contraindicated"),
    ("citalopram", "azithromycin", "qt+qt", "major"),
    ("oxycodone", "diazepam", "opioid+benzodiazepine", "major"),
    ("simvastatin", "clarithromycin", "simvastatin+strong-cyp3a4-inhibitor", "contraindicated"),
    ("methotrexate", "Bactrim", "methotrexate+trimethoprim", "major"),
    ("ramipril", "spironolactone", "acei+potassium-sparing", "major"),
    ("losartan", "amiloride", "arb+potassium-sparing", "major"),
    ("warfarin", "aspirin", "warfarin+nsaid", "major"),
])
def test_interactions_resolve_brands_and_classes_in_either_order(kb, a, b, rule_id, severity) -> None:
    rule = kb.interaction(a, b)
    assert rule is not None and (rule.id, rule.severity) == (rule_id, severity)


@pytest.mark.parametrize(("a", "b"), [("paracetamol", "ibuprofen"), ("metformin", "lisinopril"),
                                      ("amlodipine", "atorvastatin"), ("warfarin", "warfarin")])
def test_harmless_pairs_and_a_drug_with_itself_have_no_rule(kb, a, b) -> None:
    assert kb.interaction(a, b) is None


def test_most_severe_rule_wins_when_several_apply(kb) -> None:
    rules = kb.interactions_between("tramadol", "phenelzine")
    assert rules[0].severity == "contraindicated"
    assert [r.severity for r in rules] == sorted((r.severity for r in rules),
                                                 key=lambda s: -["minor", "moderate", "major", "contraindicated"].index(s))


@pytest.mark.parametrize(("drug", "rule_id"), [
    ("ibuprofen", "nsaid-kidney-disease"), ("naproxen", "nsaid-gi-bleeding"), ("diclofenac", "nsaid-late-pregnancy"),
    ("propranolol", "nonselective-beta-blocker-asthma"), ("lisinopril", "acei-pregnancy"),
    ("metformin", "metformin-severe-renal"), ("doxycycline", "tetracycline-under-8"),
    ("aspirin", "aspirin-child-viral"),
])
def test_issue_contraindications_are_present(kb, drug, rule_id) -> None:
    assert rule_id in {rule.id for rule in kb.contraindications_for(drug)}


def test_age_rules_apply_inside_their_range_only(kb) -> None:
    rule = next(r for r in kb.contraindications if r.id == "tetracycline-under-8")
    assert rule.applies_to_age(5) and not rule.applies_to_age(8) and not rule.applies_to_age(30)
    smokers = next(r for r in kb.contraindications if r.id == "chc-smoker-over-35")
    assert smokers.applies_to_age(35) and not smokers.applies_to_age(34)


def test_red_flags_cover_every_emergency_the_issue_lists(kb) -> None:
    ids = {flag.id for flag in kb.red_flags}
    assert {"acute_coronary_syndrome", "stroke", "thunderclap_headache", "sudden_vision_loss",
            "severe_breathing_difficulty", "anaphylaxis", "sepsis", "meningitis", "suicidality_self_harm",
            "overdose_poisoning", "severe_bleeding", "pregnancy_emergency", "infant_fever", "diabetic_emergency",
            "acute_abdomen", "seizure_altered_consciousness", "pulmonary_embolism_dvt",
            "testicular_torsion", "head_injury", "cauda_equina", "hypoglycaemia", "asthma_attack"} <= ids
    for flag in kb.red_flags:
        assert flag.triggers and flag.advice and flag.source


def test_numeric_ranges_in_phrases_are_expanded(kb) -> None:
    infant = kb.red_flag("infant_fever")
    assert {"1 week old", "12 weeks old", "30 days old"} <= set(infant.requires_any)
    assert not any("{" in phrase for flag in kb.red_flags for phrase in flag.triggers)


def test_load_is_cached_per_directory(kb) -> None:
    assert load_knowledge() is kb


def test_normalise_term_matches_what_the_tokenizer_sees() -> None:
    assert normalise_term("  Co-Amoxiclav ") == "co amoxiclav"
    assert normalise_term("St. John\u2019s Wort") == "st johns wort"


# ----------------------------------------------------------------------------- validation


def _override(tmp_path: Path, filename: str, data: object) -> Path:
    (tmp_path / filename).write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path


def _drugs_with(entry: dict) -> dict:
    shipped = yaml.safe_load((shipped_directory() / "drugs.yaml").read_text(encoding="utf-8"))
    return {"drugs": [*shipped["drugs"], entry]}


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "newdrug", "classes": ["x"], "source": "s", "max_dose": 5}, "key `max_dose` is unknown"),
    ({"name": "newdrug", "classes": ["x"], "source": "s", "max_daily_mg": -5}, "key `max_daily_mg` must be a positive"),
    ({"name": "newdrug", "classes": ["x"]}, "key `source` is required"),
    ({"name": "newdrug", "classes": ["x"], "source": "s", "max_daily_mg": 10, "max_single_mg": 20},
     "exceeds max_daily_mg"),
    ({"name": "newdrug", "brands": ["Advil"], "classes": ["x"], "source": "s"}, "`advil` names both"),
    ({"name": "newdrug", "classes": ["x"], "source": "s", "pediatric_max_mg_per_kg_day": 10,
      "pediatric_max_single_mg_per_kg": 15}, "exceeds pediatric_max_mg_per_kg_day"),
])
def test_bad_drug_entry_names_file_entry_and_key(tmp_path: Path, entry: dict, message: str) -> None:
    directory = _override(tmp_path, "drugs.yaml", _drugs_with(entry))
    with pytest.raises(ConfigError) as error:
        load_knowledge(directory)
    assert "drugs.yaml" in str(error.value) and message in str(error.value)


def test_bad_interaction_reference_and_severity(tmp_path: Path) -> None:
    base = {"id": "x+y", "a": "warfarin", "b": "class:nsaid", "effect": "e", "source": "s"}
    directory = _override(tmp_path, "interactions.yaml", {"interactions": [{**base, "severity": "severe"}]})
    with pytest.raises(ConfigError, match="entry 1 .*severity.* must be one of"):
        load_knowledge(directory)
    other = tmp_path / "other"
    other.mkdir()
    _override(other, "interactions.yaml", {"interactions": [{**base, "severity": "major", "b": "class:nosuch"}]})
    with pytest.raises(ConfigError, match="refers to `class:nosuch`"):
        load_knowledge(other)


def test_duplicate_ids_and_broken_yaml_are_reported(tmp_path: Path) -> None:
    shutil.copy(shipped_directory() / "red_flags.yaml", tmp_path / "red_flags.yaml")
    flags = yaml.safe_load((tmp_path / "red_flags.yaml").read_text())
    flags["red_flags"].append(flags["red_flags"][0])
    (tmp_path / "red_flags.yaml").write_text(yaml.safe_dump(flags))
    with pytest.raises(ConfigError, match="id `acute_coronary_syndrome` is used twice"):
        load_knowledge(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "contraindications.yaml").write_text("contraindications:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError, match="contraindications.yaml is not valid YAML at line"):
        load_knowledge(broken)


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_knowledge(tmp_path / "nope")


def test_override_directory_replaces_only_the_files_it_holds(tmp_path: Path) -> None:
    _override(tmp_path, "interactions.yaml", {"interactions": [
        {"id": "only", "a": "paracetamol", "b": "ibuprofen", "severity": "minor", "effect": "e", "source": "s"}]})
    custom = load_knowledge(tmp_path)
    assert [rule.id for rule in custom.interactions] == ["only"]
    assert len(custom.drugs) == len(load_knowledge().drugs)


def test_bad_co_occurrence_rule_is_reported(tmp_path: Path) -> None:
    flags = yaml.safe_load((shipped_directory() / "red_flags.yaml").read_text(encoding="utf-8"))
    flags["red_flags"][0]["near"] = [{"words": [["chest pain"], ["left"]]}]
    _override(tmp_path, "red_flags.yaml", flags)
    with pytest.raises(ConfigError, match="key `near` each rule needs `words`"):
        load_knowledge(tmp_path)


def test_co_occurrence_rules_load_as_word_sets(kb) -> None:
    rule = kb.red_flag("acute_coronary_syndrome").near[0]
    assert "chest" in rule.word_sets[0] and "squeezing" in rule.word_sets[1] and rule.within == 4


def test_exclusions_and_children_single_dose_load(kb) -> None:
    assert "ectopic beats" in kb.red_flag("obstetric_emergency").exclusions
    assert kb.red_flag("stroke").exclusions == ()
    paracetamol = kb.drug("Calpol")
    assert (paracetamol.pediatric_max_single_mg_per_kg, paracetamol.pediatric_max_mg_per_kg_day) == (15, 75)
    assert kb.drug("naproxen").pediatric_max_single_mg_per_kg is None
