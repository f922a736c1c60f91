"""Fixtures of the evaluation tests: the real guard and reward (built once), and configs of the
tiny GPT-2 pointing into tmp_path."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def guard():
    from clinical_rlhf.safety import SafetyGuard

    return SafetyGuard()


@pytest.fixture(scope="session")
def reward():
    from clinical_rlhf.config import Config
    from clinical_rlhf.reward import MultiObjectiveReward

    return MultiObjectiveReward.from_config(Config())


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a shared core they only spin."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
