"""Red flags and the emergency guidelines: a guideline that lists red flags takes their triggers and
co-occurrences when loaded (`knowledge.guidelines.derived_triggers`), so an emergency's wording lives
in one place (red_flags.yaml). The derivation must cover every red flag a guideline lists; the few
emergency and same-day guidelines that list none keep their own triggers, each a red flag to the
guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.knowledge.guidelines import (
    DEFAULT_DIRECTORY,
    GUIDELINES_FILE,
    canonical_prompt,
    load_guidelines,
    match_guidelines,
)
from clinical_rlhf.safety import SafetyGuard

# Own triggers of emergency/same-day guidelines without red flags that are deliberately not red
# flags on their own, and why.
NOT_ON_THEIR_OWN: dict[str, str] = {}


def test_the_derivation_covers_every_red_flag_a_guideline_lists() -> None:
    flags = {flag.id: flag for flag in load_knowledge().red_flags}
    listed = 0
    for guideline in load_guidelines():
        for flag_id in guideline.red_flags:
            flag = flags[flag_id]
            listed += 1
            missing = {canonical_prompt(t) for t in flag.triggers} - set(guideline.triggers)
            assert not missing, f"{guideline.id} lacks {flag_id} triggers {sorted(missing)[:5]}"
            if not flag.requires_any:
                expected = {(tuple(tuple(sorted(words)) for words in rule.word_sets), rule.within) for rule in flag.near}
                assert expected <= {(window.word_sets, window.within) for window in guideline.near}, guideline.id
    assert listed >= 15


def test_no_guideline_listing_red_flags_keeps_its_own_triggers() -> None:
    """The hand-kept second list is gone: every trigger of such a guideline is a red-flag trigger."""
    raw = yaml.safe_load((DEFAULT_DIRECTORY / GUIDELINES_FILE).read_text(encoding="utf-8"))
    kept = [item["id"] for item in raw["guidelines"] if item.get("red_flags") and item.get("triggers")]
    assert kept == []


def test_a_new_red_flag_trigger_matches_its_guideline_without_touching_the_guidelines(tmp_path: Path) -> None:
    shipped = load_knowledge().directory or DEFAULT_DIRECTORY
    raw = yaml.safe_load((Path(shipped) / "red_flags.yaml").read_text(encoding="utf-8"))
    stroke = next(flag for flag in raw["red_flags"] if flag["id"] == "stroke")
    stroke["triggers"].append("my smile has gone sideways")
    (tmp_path / "red_flags.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / GUIDELINES_FILE).write_text((DEFAULT_DIRECTORY / GUIDELINES_FILE).read_text(encoding="utf-8"),
                                            encoding="utf-8")
    prompt = "My smile has gone sideways since lunch."
    assert "stroke_fast" not in {g.id for g in match_guidelines(prompt)}
    assert "stroke_fast" in {g.id for g in match_guidelines(prompt, tmp_path)}


def test_a_guideline_listing_an_unknown_red_flag_is_one_clear_error(tmp_path: Path) -> None:
    text = (DEFAULT_DIRECTORY / GUIDELINES_FILE).read_text(encoding="utf-8")
    (tmp_path / GUIDELINES_FILE).write_text(text.replace("red_flags: [stroke]", "red_flags: [strokee]", 1),
                                            encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown red flag\(s\) \['strokee'\]"):
        load_guidelines(tmp_path)


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def test_own_triggers_of_emergency_guidelines_without_red_flags_are_red_flags(guard) -> None:
    missing = []
    for guideline in load_guidelines():
        if guideline.urgency not in ("emergency", "urgent") or guideline.red_flags:
            continue
        context = f"{guideline.context[0]}. " if guideline.context else ""
        for trigger in dict.fromkeys(t for t in guideline.triggers if "+" not in t and "*" not in t):
            if trigger in NOT_ON_THEIR_OWN:
                continue
            prompt = f"{context}{trigger[0].upper()}{trigger[1:]} since this morning. What should I do?"
            if not guard.check_prompt(prompt).flags:
                missing.append(f"{guideline.id}: {trigger}")
    assert not missing, "add these to red_flags.yaml (and the red flag to the guideline) or to NOT_ON_THEIR_OWN " \
                        "with a reason: " + "; ".join(missing)
