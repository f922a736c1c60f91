"""Scrub protected health information from text before it is stored in the audit log.

Covers what an answer or question most often carries: e-mail addresses, phone numbers, medical
record / patient / NHS / social security numbers and dates of birth. It is a safety net for
`store_raw_text`, not a de-identification service (names and addresses are not detected).
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_RECORD = re.compile(
    r"\b(?:mrn|medical record(?: number| no\.?)?|record (?:number|no\.?)|patient (?:id|number|no\.?)|"
    r"hospital (?:number|no\.?)|nhs (?:number|no\.?)|chart (?:number|no\.?)|ssn|social security(?: number)?)"
    r"\s*(?:is|:|#|=)?\s*(?:[A-Z]{1,3}[\s\-]?)?\d[\d \-/]{3,16}\d\b",
    re.IGNORECASE)
_DATE = r"(?:\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)?\s+[A-Za-z]{3,9},?\s+\d{4}" \
        r"|[A-Za-z]{3,9}\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4})"
_DATE_OF_BIRTH = re.compile(
    rf"\b(?:dob|d\.o\.b\.?|date of birth|born on|born|birth ?date|birthday)\s*(?:is|:|=|was)?\s*{_DATE}",
    re.IGNORECASE)
# Phone numbers: an optional +country code, then 7 or more digits in groups (not doses, not years).
_PHONE = re.compile(r"(?<![\w.])(?:\+?\d{1,3}[\s.\-]?)?(?:\(\d{2,5}\)[\s.\-]?)?\d{2,6}(?:[\s.\-]\d{2,6}){1,3}"
                    r"(?!\w)(?!\.\d)|(?<![\w.])\+?\d{10,13}(?!\w)(?!\.\d)")

REPLACEMENTS = (
    (_EMAIL, "[EMAIL]"),
    (_RECORD, "[RECORD_NUMBER]"),
    (_DATE_OF_BIRTH, "[DATE_OF_BIRTH]"),
    (_PHONE, "[PHONE]"),
)

_DIGITS_IN_PHONE = 7  # fewer digits than this is a dose, a count or a crisis line (988, 116 123)


def scrub_phi(text: str) -> str:
    """`text` with e-mails, record numbers, dates of birth and phone numbers replaced by tags."""
    for pattern, tag in REPLACEMENTS[:3]:
        text = pattern.sub(tag, text)
    return _PHONE.sub(_phone_or_keep, text)


def _phone_or_keep(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    return "[PHONE]" if digits >= _DIGITS_IN_PHONE else match.group(0)
