"""Human feedback: the expert preference format, the shipped preference set, and how clinicians'
judgements are read, validated and appended.

    from clinical_rlhf.feedback import load_preferences, append_preference, PreferenceRecord
    records = load_preferences("preferences.jsonl")   # InputDataError lists every bad line
    pairs = decisive(records)                         # ties dropped: what BT and DPO train on
    read_quarantine("quarantine.jsonl")               # corrections the guard rejected, for review only

This package imports no torch.
"""

from clinical_rlhf.feedback.preferences import (
    CHOICES,
    OBJECTIVES,
    LineError,
    PreferenceRecord,
    append_preference,
    decisive,
    iter_preferences,
    load_preferences,
    parse_preference,
    write_preferences,
)
from clinical_rlhf.feedback.quarantine import QuarantinedCorrection, append_quarantined, read_quarantine

__all__ = [
    "CHOICES",
    "OBJECTIVES",
    "LineError",
    "PreferenceRecord",
    "QuarantinedCorrection",
    "append_preference",
    "append_quarantined",
    "decisive",
    "iter_preferences",
    "load_preferences",
    "parse_preference",
    "read_quarantine",
    "write_preferences",
]
