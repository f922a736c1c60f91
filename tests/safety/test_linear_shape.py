"""The SHAPE of the guard's cost on hostile input, not its speed: for each worst-case family of
`benchmarks/guard_worst_case.py` (numbers with commas, repeated dose phrases, repeated red-flag
phrases, bidi and invisible characters, drug-name soups), as the answer and as the question, the
CPU time of one check at 8n characters divided by the time at n must stay within the bound of
`cost_shape.py` (32x; linear gives 8, less where a fixed cost dominates, quadratic 64), so the
test does not depend on how fast the machine is. Absolute speed is the benchmarks' business.

Each size is timed as the median of three CPU-time measurements (`time.thread_time`: the check
runs on this thread, and a process clock can be tick-sampled), each checking new texts until at
least `MIN_MEASURE_SECONDS` have been spent, so that short checks are not lost in timer noise and
no memo of the guard serves a text it has seen. Hypothesis draws the text's seed and n; shrinking
is off (it would re-time many examples), a failing example is reported as drawn. About 5 CPU
seconds in all.

Before the clinical-reading rewrite (issue 14), numbers with commas and dose phrases as the answer
grew ~64x and 17-31x here, dose phrases as the question and drug soups as the answer 15-19x.
"""

from __future__ import annotations

import itertools
import random
import statistics
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety import SafetyGuard

from .cost_shape import assert_linear_shape

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from guard_worst_case import FAMILIES, build_text  # noqa: E402  (benchmarks/ is not a package)

MIN_MEASURE_SECONDS = 0.01
BASE_SIZE = 2048
"""n in characters: large enough that the text, not the fixed cost of a check, is measured; small
enough that a quadratic family at 8n still finishes in well under a second."""

CASES = [pytest.param(family, side, id=f"{family}-{side}") for family in FAMILIES for side in ("answer", "question")]


def fresh_texts(family_name: str, size: int, seed: int):
    """Endless texts of the family, each new to the guard: its memos (per sentence piece, per
    question) would otherwise time a lookup instead of a reading. A text starts with a made-up
    word drawn anew, which no phrase list holds, so that even a family of one repeated unit
    ("1,000,000,") differs from text to text in its first piece."""
    rng = random.Random(seed)
    for index in itertools.count():
        tag = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))
        text = build_text(FAMILIES[family_name], size, seed=seed + index)
        yield f"{tag} {text}"[:size]


def cpu_seconds_per_check(guard: SafetyGuard, family_name: str, side: str, size: int, seed: int) -> float:
    """Median over three measurements of the CPU seconds one check of a new text takes."""
    question = FAMILIES[family_name].question
    texts = fresh_texts(family_name, size, seed)
    measurements = []
    for _ in range(3):
        calls, spent = 0, 0.0
        while spent < MIN_MEASURE_SECONDS:
            text = next(texts)
            started = time.thread_time()
            guard.check_prompt(text) if side == "question" else guard.check(question, text)
            spent += time.thread_time() - started
            calls += 1
        measurements.append(spent / calls)
    return statistics.median(measurements)


@pytest.mark.cost_shape
@pytest.mark.parametrize(("family_name", "side"), CASES)
@settings(max_examples=2, deadline=None, derandomize=True, phases=(Phase.generate,),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), stretch=st.floats(1.0, 1.5))
def test_cost_grows_at_most_subquadratically(guard, family_name, side, seed, stretch):
    assert_linear_shape(lambda size: cpu_seconds_per_check(guard, family_name, side, size, seed),
                        int(BASE_SIZE * stretch), f"{family_name} as the {side}")
