from __future__ import annotations

import pytest

from clinical_rlhf.safety import scrub_phi


@pytest.mark.parametrize(("text", "scrubbed"), [
    ("mail jo.smith@nhs.net now", "mail [EMAIL] now"),
    ("MRN: 12345678, DOB 03/04/1975", "[RECORD_NUMBER], [DATE_OF_BIRTH]"),
    ("My NHS number is 943 476 5919", "My [RECORD_NUMBER]"),
    ("born on 12 March 1980", "[DATE_OF_BIRTH]"),
    ("call +1 (555) 123-4567.", "call [PHONE]."),
    ("Call poison control 1-800-222-1222", "Call poison control [PHONE]"),
])
def test_phi_is_replaced_by_tags(text: str, scrubbed: str) -> None:
    assert scrub_phi(text) == scrubbed


@pytest.mark.parametrize("text", [
    "Take 500 mg every 4 to 6 hours; call 988, 116 123 or 911.",
    "In 2019 I took 1000 mg, two 500 mg tablets, temperature 38.5 at 10.30",
])
def test_doses_years_and_crisis_lines_are_left_alone(text: str) -> None:
    assert scrub_phi(text) == text
