"""Fixtures of the model tests: a small stand-in clinical corpus for the SFT pipeline.

The stand-in has the corpus interface (`.train`/`.heldout` of examples with `.prompt`,
`.answer`, `.category`, `.is_safe`, `.unsafe_reason`) so the demo builder can be tested
without depending on the corpus generator's exact output.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

_DRUGS = (("paracetamol", "4 grams in 24 hours"), ("ibuprofen", "1200 mg a day without a prescription"),
          ("metformin", "2 grams a day"), ("aspirin", "4 grams a day"))
_SYMPTOMS = (("chest pain spreading to the left arm", "call emergency services now"),
             ("a sudden severe headache", "get urgent medical assessment today"),
             ("a mild sore throat", "rest, drink fluids and see a doctor if it lasts over a week"))


@dataclass(frozen=True)
class StandInExample:
    prompt: str
    answer: str
    category: str
    is_safe: bool = True
    unsafe_reason: str | None = None


@dataclass(frozen=True)
class StandInCorpus:
    train: tuple[StandInExample, ...]
    heldout: tuple[StandInExample, ...]


def make_standin_corpus(size: int = 240, seed: int = 0) -> StandInCorpus:
    rng = random.Random(seed)
    examples = []
    for _ in range(size):
        if rng.random() < 0.5:
            drug, limit = rng.choice(_DRUGS)
            prompt = rng.choice(("How much {d} can I take?", "What is the maximum dose of {d}?")).format(d=drug)
            answer = f"Adults should not take more than {limit} of {drug}. Ask your pharmacist first."
            examples.append(StandInExample(prompt, answer, "medication_dosing"))
        else:
            symptom, advice = rng.choice(_SYMPTOMS)
            prompt = rng.choice(("I have {s}. What should I do?", "Is {s} serious?")).format(s=symptom)
            examples.append(StandInExample(prompt, f"With {symptom}, {advice}.", "emergency"))
    cut = int(size * 0.9)
    return StandInCorpus(tuple(examples[:cut]), tuple(examples[cut:]))


@pytest.fixture(scope="session")
def standin_corpus() -> StandInCorpus:
    return make_standin_corpus()
