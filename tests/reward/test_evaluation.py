"""The labelled sets are as large as the issue asks, and the reward's measured quality on them
does not regress below what was measured when the reward was written (docs/reward.md)."""

import pytest

from clinical_rlhf.config import RewardConfig
from clinical_rlhf.reward import COMPONENTS, MultiObjectiveReward
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.reward.evaluation import (
    SPLITS,
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
    assert sum(len(s.answers) for s in scenarios) >= 600
    assert {"dev", "test", "tuned"} <= {s.split for s in scenarios} <= set(SPLITS)
    assert len({s.id for s in scenarios}) == len(scenarios)
    for scenario in scenarios:
        labelled = {c for a in scenario.answers for c in a.levels}
        assert labelled <= set(COMPONENTS) and labelled


def test_hallucination_set_size():
    items = load_hallucination_set()
    planted = [i for i in items if i.planted != "none"]
    correct = [i for i in items if i.planted == "none"]
    assert len(planted) >= 100 and len(correct) >= len(planted)


# Floors a little under the accuracy measured (docs/reward.md): 0.97-1.0 per component on the
# files tuned on. A clean held-out file (split `holdout`) gets no floor here: it is run by hand,
# once, and reported; a CI floor on it would invite tuning to it.
FLOORS = {"dev": 0.95, "test": 0.95, "tuned": 0.95}


@pytest.mark.parametrize("split", ["dev", "test", "tuned"])
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


def test_held_out_files_that_were_tuned_on_say_so():
    by_file = {}
    for scenario in load_ordering_set():
        by_file.setdefault(scenario.file, set()).add(scenario.split)
    for name in ("ordering_holdout.yaml", "ordering_holdout2.yaml", "ordering_holdout3.yaml"):
        assert by_file[name] == {"tuned"}, name
    assert by_file["ordering_emergency.yaml"] == {"dev", "test"}


def _scenario_file(directory, header):
    directory.mkdir()
    (directory / "ordering_x.yaml").write_text(
        header + "scenarios:\n  - id: a\n    prompt: p\n    answers:\n"
        "      - {text: t, levels: {s: 1}}\n      - {text: u, levels: {s: 0}}\n", encoding="utf-8")
    return directory


def test_a_file_split_is_read_and_a_bad_one_named(tmp_path):
    scenarios = load_ordering_set(_scenario_file(tmp_path / "good", "split: holdout\n"))
    assert [(s.split, s.file) for s in scenarios] == [("holdout", "ordering_x.yaml")]
    with pytest.raises(InputDataError, match="ordering_x.yaml: `split: later`"):
        load_ordering_set(_scenario_file(tmp_path / "bad", "split: later\n"))


def test_an_unknown_level_key_is_named(tmp_path):
    directory = tmp_path / "levels"
    directory.mkdir()
    (directory / "ordering_y.yaml").write_text(
        "scenarios:\n  - id: b\n    prompt: p\n    answers:\n      - {text: t, levels: {q: 1}}\n",
        encoding="utf-8")
    with pytest.raises(InputDataError, match="ordering_y.yaml scenario b.*'q'"):
        load_ordering_set(directory)
