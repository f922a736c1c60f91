"""Fixtures of the distributed tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread, as the worker processes use: float sums depend on the thread count,
    and the one-process run is compared with the two-process one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def one_process_run(tiny_gpt2_dir, tmp_path_factory):
    """The one-process reference both the DDP and the FSDP comparisons measure against: the
    initial trainable weights and a 3-iteration run in `<root>/one/run` (trained once per session)."""
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.seeding import seed_everything

    from . import harness

    root = tmp_path_factory.mktemp("one-process")
    seed_everything(4)
    initial = build_policy(harness.config(tiny_gpt2_dir, root / "unused", "run")).trainable_state_dict()
    one = harness.run_trainer(harness.config(tiny_gpt2_dir, root / "one", "run"))
    return {"run_dir": root / "one" / "run", "initial": initial, "one": one}
