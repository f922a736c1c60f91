"""Reading vital signs and laboratory values with their units (`safety/observations.py`), and the
clinical signs data file's validation (`knowledge/signs.py`). Sentences are the project's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.signs import SIGNS_FILE, load_clinical_signs
from clinical_rlhf.safety.observations import ObservationReader


@pytest.fixture(scope="module")
def reader() -> ObservationReader:
    return ObservationReader(load_clinical_signs())


def values(reader: ObservationReader, guard, text: str) -> dict[str, float]:
    """kind -> value of what the text states, read from the guard's normalised text."""
    return {observation.kind: observation.value for observation in reader.read(guard.normalise(text).text)}


@pytest.mark.parametrize(("text", "expected"), [
    ("HR 124, BP 92/58, RR 32", {"heart_rate": 124, "systolic": 92, "diastolic": 58, "respiratory_rate": 32}),
    ("pulse 36 bpm at rest", {"heart_rate": 36}),
    ("her heart rate was 150 when I checked", {"heart_rate": 150}),
    ("Resting pulse of 44, feels dizzy", {"heart_rate": 44}),
    ("sats 86% RA", {"spo2": 86}),
    ("SpO2: 93 % on 2 L", {"spo2": 93}),
    ("oxygen level 89 percent", {"spo2": 89}),
    ("T 38.9", {"temperature": 38.9}),
    ("temp 101.8 F", {"temperature": 38.78}),
    ("temperature of 39.4°C since lunch", {"temperature": 39.4}),
    ("fever of 103 since this morning", {"temperature": 39.44}),
    ("GCS 12 (E3 V4 M5)", {"gcs": 12}),
    ("GCS E2 V2 M4 on arrival", {"gcs": 8}),
    ("gcs 14/15", {"gcs": 14}),
    ("K+ 6.8, Na 131", {"potassium": 6.8, "sodium": 131}),
    ("serum potassium came back at 2.3", {"potassium": 2.3}),
    ("lactate 4.6", {"lactate": 4.6}),
    ("BM 2.1", {"glucose": 2.1}),
    ("blood sugar 450 mg/dl", {"glucose": 24.98}),
    ("his sugar reading is 38", {"glucose": 38}),
    ("ketones 4.2 mmol/l", {"ketones": 4.2}),
    ("Hb 68", {"haemoglobin": 68}),
    ("haemoglobin 7.4 g/dl", {"haemoglobin": 74}),
    ("CRT 4 s centrally", {"capillary_refill": 4}),
    ("cap refill under 2 seconds", {"capillary_refill": 1.99}),
    ("systolic 84", {"systolic": 84}),
    ("hypotensive, 82 systolic", {"systolic": 82}),
    ("febrile 38.9 overnight", {"temperature": 38.9}),
    ("BP 188/122 mmHg", {"systolic": 188, "diastolic": 122}),
    ("NEWS2 of 7 on the obs chart", {"news2_stated": 7}),
    ("38.2 degrees", {}),  # a bare temperature with no label or identifying unit word
    ("she is 39.5 degrees celsius", {"temperature": 39.5}),
    ("resps 28 /min", {"respiratory_rate": 28}),
    ("Ｈｒ １６４ and temp 39.5℃", {"heart_rate": 164, "temperature": 39.5}),  # full-width letters, the ℃ sign
])
def test_values_with_labels_and_units(reader, guard, text, expected) -> None:
    read = values(reader, guard, text)
    assert read.keys() == expected.keys(), read
    for kind, value in expected.items():
        assert read[kind] == pytest.approx(value, abs=0.02), (kind, read)


@pytest.mark.parametrize("text", [
    "I am 54 and take 5 mg of amlodipine a day",            # ages and doses are not vital signs
    "take 2 tablets every 4 hr 500 mg each time",           # "hr" is an hour here: 500 mg belongs to the dose
    "my appointment is on 12/10 at 9",                      # a date is no blood pressure
    "my son got 98 percent in his maths test",              # a percentage without an SpO2 label
    "I sat at 90 degrees for an hour",                      # "sat" followed by a posture angle
    "the pulse oximeter costs 25 pounds",                   # a price next to a label
    "heart rate monitor, 3 batteries",                      # a label without a value
    "temperature 3 days ago was high",                      # 3 is out of a temperature's range
    "BP 80/120",                                            # diastolic above systolic: a typo, not read
])
def test_numbers_that_are_not_vital_signs_are_not_read(reader, guard, text) -> None:
    assert values(reader, guard, text) == {}


def test_spo2_says_whether_it_was_on_oxygen(reader, guard) -> None:
    def oxygen(text: str):
        (spo2,) = [o for o in reader.read(guard.normalise(text).text) if o.kind == "spo2"]
        return spo2.on_oxygen

    assert oxygen("sats 91% on 4l via nasal cannula") is True
    assert oxygen("SpO2 95% on room air") is False
    assert oxygen("sats 97%") is None


def test_a_comparison_moves_the_value_past_the_number(reader, guard) -> None:
    assert values(reader, guard, "sats below 90") == {"spo2": pytest.approx(89.99)}
    assert values(reader, guard, "HR > 100") == {"heart_rate": pytest.approx(100.01)}


def test_peak_flow_is_read_as_percent_of_best_or_predicted(reader, guard) -> None:
    assert values(reader, guard, "peak flow 150 L/min, best 450") == {"peak_flow": pytest.approx(33.3)}
    assert values(reader, guard, "PEFR 45% of predicted") == {"peak_flow": 45}
    assert values(reader, guard, "PEF 200 (40% of best)") == {"peak_flow": 40}
    assert values(reader, guard, "peak flow 300") == {}  # a rate alone cannot be judged


def test_conversions_are_shown_in_the_detail(reader, guard) -> None:
    (temperature,) = reader.read(guard.normalise("temp 101.8 F").text)
    assert temperature.detail == "101.8 f = 38.8 °C"
    (gcs,) = reader.read(guard.normalise("GCS E3 V3 M5").text)
    assert gcs.detail == "E3 V3 M5 = 11"


def test_the_shipped_file_loads_with_a_source_on_every_rule() -> None:
    signs = load_clinical_signs()
    assert all(t.source for t in signs.thresholds) and all(f.source for f in signs.findings)
    assert all(r.source and r.bands for r in signs.rules)
    assert {"wells_dvt", "wells_pe", "ottawa_ankle", "heart", "centor", "feverpain"} <= {r.id for r in signs.rules}


def _write(tmp_path: Path, replace: tuple[str, str]) -> Path:
    shipped = (Path(load_clinical_signs().path)).read_text(encoding="utf-8")
    assert replace[0] in shipped
    (tmp_path / SIGNS_FILE).write_text(shipped.replace(replace[0], replace[1], 1), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("replace", "message"), [
    (("- id: spo2_low\n  observation: spo2", "- id: spo2_low\n  observation: spo3"), "unknown observation 'spo3'"),
    (("  urgency: emergency\n  source: BTS oxygen", "  urgency: asap\n  source: BTS oxygen"), "urgency"),
    (("- id: spo2_borderline", "- id: spo2_low"), "used twice"),
    (("  below: 92\n  unless: [hypercapnic_target]", "  unless: [hypercapnic_target]"), "at_least"),
    (("    value: pressure", "    value: fraction"), "value"),
])
def test_a_malformed_file_names_the_entry_and_the_key(tmp_path, replace, message) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        load_clinical_signs(_write(tmp_path, replace))
    assert SIGNS_FILE in str(error.value)


def test_a_file_that_is_not_yaml_is_one_clear_error(tmp_path) -> None:
    (tmp_path / SIGNS_FILE).write_text("thresholds: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the clinical signs file"):
        load_clinical_signs(tmp_path)


def test_a_knowledge_directory_without_the_file_uses_the_shipped_one(tmp_path) -> None:
    assert load_clinical_signs(tmp_path).path == load_clinical_signs().path


def test_the_doc_tables_list_every_rule_of_the_data() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "clinical_signs.md").read_text(encoding="utf-8")
    signs = load_clinical_signs()
    ids = [t.id for t in signs.thresholds] + [f.id for f in signs.findings] + [r.id for r in signs.rules] \
        + [e.id for r in signs.rules for e in r.elements] + list(signs.observations)
    missing = [name for name in ids if f"`{name}`" not in doc]
    assert not missing, f"docs/clinical_signs.md lacks {missing}"
