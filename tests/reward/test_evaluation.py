"""The labelled sets are as large as the issue asks, and the reward's measured quality on them
does not regress below what was measured when the reward was written (docs/reward.md)."""

import pytest

from clinical_rlhf.config import RewardConfig
from clinical_rlhf.reward import COMPONENTS, MultiObjectiveReward
from clinical_rlhf.reward.evaluation import (
    evaluate_hallucination,
    evaluate_ordering,
    load_hallucination_set,
    load_ordering_set,
)


@pytest.fixture(scope="module")
def reward():
    return MultiObjectiveReward(RewardConfig())


def test_ordering_set_size_and_labels():
    scenarios = load_ordering_set()
    assert sum(len(s.answers) for s in scenarios) >= 300
    assert {s.split for s in scenarios} == {"dev", "test", "holdout"}
    assert len({s.id for s in scenarios}) == len(scenarios)
    for scenario in scenarios:
        labelled = {c for a in scenario.answers for c in a.levels}
        assert labelled <= set(COMPONENTS) and labelled


def test_hallucination_set_size():
    items = load_hallucination_set()
    planted = [i for i in items if i.planted != "none"]
    correct = [i for i in items if i.planted == "none"]
    assert len(planted) >= 100 and len(correct) >= len(planted)


# Floors a little under the accuracy measured when the reward was written (docs/reward.md):
# dev/test ~0.97-1.0 per component; the held-out files 0.79 (safety) to 0.97.
FLOORS = {"dev": 0.95, "test": 0.95, "holdout": 0.75}


@pytest.mark.parametrize("split", ["dev", "test", "holdout"])
def test_pairwise_ordering_accuracy_per_component(reward, split):
    result = evaluate_ordering(reward, [s for s in load_ordering_set() if s.split == split])
    for component in COMPONENTS:
        assert result.tests[component] >= 15, component
        assert result.accuracy(component) >= FLOORS[split], (component, result.failures)


def test_overall_ordering_accuracy_meets_the_target(reward):
    result = evaluate_ordering(reward, load_ordering_set())
    for component in COMPONENTS:
        assert result.accuracy(component) >= 0.9, component


def test_hallucination_precision_recall(reward):
    items = load_hallucination_set()
    dev = evaluate_hallucination(reward, [i for i in items if i.split == "dev"])
    holdout = evaluate_hallucination(reward, [i for i in items if i.split == "holdout"])
    assert dev.precision >= 0.95 and dev.recall >= 0.95
    assert holdout.precision >= 0.9 and holdout.recall >= 0.75
    assert dev.true_positive + dev.false_negative == 110
