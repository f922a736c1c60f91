"""Fixtures of the RL tests: fresh trainable bundles and a tiny model PPO can visibly move."""

from __future__ import annotations

from pathlib import Path

import pytest


def fresh_bundle(cfg):
    """A new PolicyBundle for `cfg` (tests train it in place, so never the session one)."""
    from clinical_rlhf.models import build_policy

    return build_policy(cfg)


@pytest.fixture
def bundle(tiny_gpt2_config):
    return fresh_bundle(tiny_gpt2_config)


@pytest.fixture(scope="session")
def learnable_gpt2_dir(tiny_gpt2_dir, tmp_path_factory) -> Path:
    """The shared tiny GPT-2 with an untied LM head scaled x8.

    GPT-2 ends in a LayerNorm and ties its LM head to embeddings initialised at std 0.02, so a
    random tiny one gives logits within about +-0.6 whatever its hidden state: no adapter can
    make any answer more likely, and PPO has nothing to learn with. An untied head at std 0.16
    gives logits of order 1 (entropy ~2 nats at T=0.7), like a trained model. Scaling the tied
    matrix instead would also scale the input embeddings and yield a copy-the-last-token model.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = tmp_path_factory.mktemp("learnable-gpt2")
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.transformer.wte.weight.detach().clone() * 8.0)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(directory)
    return directory


def trainer_config(model_dir: Path, runs_dir: Path, *, ppo: dict | None = None, training: dict | None = None,
                   safety: dict | None = None, alerts: list | None = None):
    """A small, fast PPO config on `model_dir` (batch 32 of 8-token answers)."""
    from clinical_rlhf.models.tiny import tiny_model_config

    ppo_section = {"learning_rate": 1e-2, "batch_size": 32, "mini_batch_size": 16, "micro_batch_size": 16,
                   "max_new_tokens": 8, "missing_eos_penalty": 0.0} | (ppo or {})
    training_section = {"runs_dir": str(runs_dir), "run_name": "test", "num_iterations": 10, "seed": 4,
                        "ppo": ppo_section} | (training or {})
    return tiny_model_config(model_dir, training=training_section,
                             safety={"max_unsafe_ratio": 1.0, "audit": {"fsync": "never"}} | (safety or {}),
                             monitoring={"alerts": alerts or []})


PROMPTS = tuple(f"question number {i} about chest pain" for i in range(40))

PROMPTS_OF_MANY_LENGTHS = ["chest pain and sweating", "a mild headache since this morning after a long flight", "fever"]
"""Prompts of different lengths: a batch of them is left-padded."""


def perturbed(bundle):
    """`bundle` with every trainable weight moved (a fresh adapter is the identity, a fresh value
    head gives 0), so that policy, reference and critic all differ from their start."""
    import torch

    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in bundle.trainable_parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator).to(parameter.dtype) * 0.1)
    return bundle


def rollout_with_early_ends(bundle, temperature: float = 0.7):
    """A rollout with left-padded prompts and answers that end at different columns: a random
    tiny model hardly ever samples its EOS, so two tokens it sampled become extra EOS ids of the
    bundle's generation config and the same draw is repeated (the same seed gives the same tokens
    up to each new end)."""
    import torch

    from clinical_rlhf.rl.rollout import eos_token_ids, generate

    sampling = {"max_new_tokens": 12, "temperature": temperature, "top_p": 0.9, "max_prompt_tokens": 64}
    torch.manual_seed(5)
    first = generate(bundle, PROMPTS_OF_MANY_LENGTHS, **sampling)
    stops = {int(first.response_ids[0, 3]), int(first.response_ids[1, 7])}
    bundle.model.generation_config.eos_token_id = sorted(eos_token_ids(bundle) | stops)
    torch.manual_seed(5)
    rollout = generate(bundle, PROMPTS_OF_MANY_LENGTHS, **sampling)
    lengths = rollout.response_mask.sum(1)
    assert rollout.ended_with_eos.any() and lengths.max() > lengths.min()
    return rollout


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CI core two spinning
    OpenMP threads make these tests several times slower. Session-wide, because float sums
    depend on the thread count and the resume tests compare runs bit for bit."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
