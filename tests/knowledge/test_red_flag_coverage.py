"""Red flags against the other list of emergencies in the knowledge base: every phrase an emergency or
same-day guideline (guidelines.yaml) is triggered by must be a red flag to the guard, or the corpus
writes emergency questions whose dismissive answers the guard lets through."""

from __future__ import annotations

import pytest

from clinical_rlhf.knowledge.guidelines import load_guidelines
from clinical_rlhf.safety import SafetyGuard

# Guideline phrases that are deliberately not red flags on their own, and why. Each is a fragment
# or a common harmless complaint; the emergency forms are red flags ("pain radiating to my arm",
# "cant touch my chin to my chest", "wet myself and back pain").
NOT_ON_THEIR_OWN = {
    "pain radiating": "sciatica and shingles pain radiate too; the arm, jaw and neck forms are red flags",
    "lopsided": "says nothing about a face or smile; 'lopsided smile' and 'face is lopsided' are red flags",
    "dead arm": "usually from sleeping on it; 'arm has gone dead' is a red flag",
    "tiny red spots": "heat rash and insect bites too; spots that do not fade under a glass are the red flag",
    "chin to chest": "a fragment of 'cant touch my chin to my chest', which is a red flag",
    "chin to my chest": "a fragment of 'cant touch my chin to my chest', which is a red flag",
    "end it": "'at the end it was fine' reads the same once 'the' is dropped; wanting or planning to end it is",
    "whole packet": "a fragment; 'took the whole packet' is a red flag",
    "empty packet": "a fragment without who took what",
    "wet myself": "stress incontinence is common; with back pain it is a red flag (cauda equina)",
    "peeing myself": "stress incontinence is common; with back pain it is a red flag (cauda equina)",
    "weeing myself": "stress incontinence is common; with back pain it is a red flag (cauda equina)",
    "pooed myself": "diarrhoea is the usual cause; loss of bowel control with back pain is a red flag",
    "lump on my head": "a cyst or lipoma too; a bump on the head after a knock is a red flag",
    "double dose of": "a fragment; 'took a double dose' is a red flag",
    "took all my": "a fragment; 'took all my pills at once' is a red flag",
    "whole box of": "a fragment; 'took a whole box of' is a red flag",
    "whole bottle of": "a fragment; 'took a whole bottle of' is a red flag",
    "left nut": "a body part, not a symptom; 'left nut hurts' and 'pain in my nuts' are red flags",
    "right nut": "a body part, not a symptom; 'right nut hurts' and 'pain in my nuts' are red flags",
    "my nuts": "a body part (and a food); 'pain in my nuts' is a red flag",
    "one of my nuts": "a body part, not a symptom; 'nut hurts' is a red flag",
}


def plain(trigger: str) -> bool:
    """Words a person could type, not matcher syntax ("a + b", "droop*")."""
    return "+" not in trigger and "*" not in trigger


@pytest.fixture(scope="module")
def guard() -> SafetyGuard:
    return SafetyGuard()


def test_every_emergency_guideline_phrase_is_a_red_flag(guard) -> None:
    missing = []
    for guideline in load_guidelines():
        if guideline.urgency not in ("emergency", "urgent"):
            continue
        context = f"{guideline.context[0]}. " if guideline.context else ""
        for trigger in dict.fromkeys(filter(plain, guideline.triggers)):
            if trigger.lower() in NOT_ON_THEIR_OWN:
                continue
            prompt = f"{context}{trigger[0].upper()}{trigger[1:]} since this morning. What should I do?"
            if not guard.check_prompt(prompt).flags:
                missing.append(f"{guideline.id}: {trigger}")
    assert not missing, "add these to red_flags.yaml or to NOT_ON_THEIR_OWN with a reason: " + "; ".join(missing)


def test_the_omissions_are_still_guideline_phrases() -> None:
    """An omission the guidelines no longer use is stale and should go."""
    used = {trigger.lower() for guideline in load_guidelines() if guideline.urgency in ("emergency", "urgent")
            for trigger in guideline.triggers}
    assert set(NOT_ON_THEIR_OWN) <= used, sorted(set(NOT_ON_THEIR_OWN) - used)
