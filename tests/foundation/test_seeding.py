"""`seed_everything`: one call makes python, numpy and torch draws repeat; `deterministic`
switches torch's deterministic algorithms on and off."""

from __future__ import annotations

import random

import numpy as np
import torch

from clinical_rlhf.seeding import seed_everything


def draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    seed_everything(123)
    first = draws()
    seed_everything(123)
    assert draws() == first
    seed_everything(124)
    assert draws() != first


def test_deterministic_flag_toggles_torch_deterministic_algorithms() -> None:
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        seed_everything(0, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_same_seed_builds_the_same_weights() -> None:
    """What the demo build and PPO rely on: the same seed builds the same weights."""
    seed_everything(7)
    first = torch.nn.Linear(8, 8).weight.detach().clone()
    seed_everything(7)
    assert torch.equal(torch.nn.Linear(8, 8).weight, first)


def test_preserved_random_state_leaves_the_callers_streams_and_threads_alone() -> None:
    from clinical_rlhf.seeding import preserved_random_state

    threads = torch.get_num_threads()
    seed_everything(5)
    expected = draws()
    seed_everything(5)
    with preserved_random_state():
        seed_everything(99)  # what a model build does
        draws()
        torch.set_num_threads(max(1, threads + 1))
    assert draws() == expected
    assert torch.get_num_threads() == threads
