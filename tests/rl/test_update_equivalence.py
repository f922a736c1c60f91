"""The faster update computes the previous update's maths: loss and gradients equal to 1e-6.

The previous implementation is written out here as it was: the rollout's old log-probs and
values from a scoring pass (one policy forward without grad after sampling), one forward over
the whole, padded mini-batch, logits of every column sliced to the answer, log-probs through a
full `log_softmax(logits / T)`, the vocabulary-wide entropy on every pass. The current one keeps
the old log-probs and values that sampling computed, cuts the mini-batch into length-sorted
micro-batches without all-padding columns, runs the LM head on the answer's columns only, and
skips the entropy pass when its coefficient is 0. GPT-2's `gelu_new` runs as torch's fused
kernel of the same formula, sampling runs each LoRA layer with its update merged into the base
matrix, and the update's passes add the LoRA update inside the low-rank GEMM (models/kernels.py): the update's loss and gradients, and the rollout's tensors, equal the
previous ones to 1e-6.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from transformers.activations import GELUTanh, NewGELUActivation

import clinical_rlhf.models.bundle as bundle_module

from clinical_rlhf.rl import losses
from clinical_rlhf.rl.distributed import Distributed
from clinical_rlhf.rl.experience import make_experience
from clinical_rlhf.rl.rollout import generate, score
from clinical_rlhf.rl.update import LocalStep, RankMiniBatches, accumulate_gradients, micro_batch_loss
from clinical_rlhf.seeding import seed_everything

from .conftest import perturbed, rollout_with_early_ends

TEMPERATURE = 0.7
PROMPTS = ["fever", "a mild headache since this morning after a long flight", "chest pain and sweating at rest",
           "rash", "my child has a fever and a rash that does not fade under a glass", "cough for three weeks",
           "is ibuprofen safe with warfarin", "dizzy"]


@torch.no_grad()
def previous_score(bundle, rollout, temperature):
    """The rollout's log-probs, values and reference log-probs before sampling kept its own
    (rl/rollout.py at 2011dbc): a policy and a reference pass over [prompt | answer]."""
    steps, mask = rollout.response_ids.shape[1], rollout.response_mask
    logits, values = bundle.forward(rollout.input_ids, rollout.attention_mask, last=steps + 1)
    rollout.logprobs = losses.logprobs_of_tokens(logits[:, :steps], rollout.response_ids, temperature) * mask
    rollout.values = values[:, :steps].float() * mask
    with bundle.reference():
        ref_logits = bundle.logits(rollout.input_ids, rollout.attention_mask, last=steps + 1)[:, :steps]
    rollout.ref_logprobs = losses.logprobs_of_tokens(ref_logits, rollout.response_ids, temperature) * mask
    return rollout


def previous_micro_batch_loss(bundle, batch, ppo, temperature):
    """The update's loss before this change (rl/update.py and rl/rollout.py at 73772b6)."""
    rollout = batch.rollout
    mask = rollout.response_mask
    width, steps = rollout.query_ids.shape[1], rollout.response_ids.shape[1]
    logits, values = bundle.forward(rollout.input_ids, rollout.attention_mask)
    logits = logits[:, width - 1: width - 1 + steps]
    logprobs = torch.log_softmax(logits / temperature, dim=-1).gather(-1, rollout.response_ids.unsqueeze(-1)).squeeze(-1)
    values = values[:, width - 1: width - 1 + steps].float()
    pg_loss, _ = losses.policy_loss(logprobs, rollout.logprobs, batch.advantages, mask, ppo.clip_range)
    entropy = losses.masked_token_mean(losses.entropy_from_logits(logits, temperature), mask)
    v_loss, _ = losses.value_loss(values, rollout.values, batch.returns, mask, ppo.clip_range_value)
    return pg_loss - ppo.entropy_coef * entropy + ppo.vf_coef * v_loss


@pytest.fixture
def experience_and_bundle(bundle, tiny_gpt2_config):
    """Prompts of 1 to 14 words and answers of 1 to 8 tokens: padding on both sides."""
    seed_everything(0)
    rollout = generate(bundle, PROMPTS, max_new_tokens=8, temperature=TEMPERATURE, top_p=1.0, max_prompt_tokens=64)
    lengths = torch.tensor([3, 8, 1, 5, 2, 7, 4, 6]).unsqueeze(1)
    rollout.response_mask = (torch.arange(rollout.response_mask.shape[1]) < lengths).float()
    previous_score(bundle, rollout, TEMPERATURE)  # the old tensors of the answers as re-cut
    with torch.no_grad():  # move the policy off the rollout's, so ratios, clipping and value clipping all act
        for parameter in bundle.trainable_parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    ppo = tiny_gpt2_config.training.ppo.model_copy(update={"mini_batch_size": 8, "ppo_epochs": 1})
    experience, _ = make_experience(rollout, torch.linspace(-1, 1, 8), torch.zeros(8), kl_coef=0.05,
                                    multiplier=None, ppo=ppo)
    return experience, bundle, ppo


def gradients(bundle) -> list[torch.Tensor]:
    return [parameter.grad.detach().clone() for parameter in bundle.trainable_parameters()]

def loss_and_gradients(bundle, batch, ppo) -> tuple[float, list[torch.Tensor]]:
    """The micro-batch loss and the gradients it gives, from zeroed gradients."""
    bundle.model.zero_grad(set_to_none=True)
    bundle.value_head.zero_grad(set_to_none=True)
    loss, _ = micro_batch_loss(bundle, batch, ppo, TEMPERATURE)
    loss.backward()
    return loss.item(), gradients(bundle)


def assert_same_loss_and_gradients(previous, current) -> None:
    """Two (loss, gradients) equal to 1e-6, the gradients large enough to mean something."""
    (previous_loss, expected), (loss, grads) = previous, current
    assert loss == pytest.approx(previous_loss, abs=1e-6)
    assert max((a - b).abs().max().item() for a, b in zip(grads, expected)) < 1e-6
    assert max(g.abs().max().item() for g in expected) > 1e-3



@pytest.mark.parametrize("entropy_coef", [0.0, 0.01])
def test_micro_batch_loss_and_gradients_equal_the_previous_implementation(experience_and_bundle, entropy_coef):
    experience, bundle, ppo = experience_and_bundle
    ppo = ppo.model_copy(update={"entropy_coef": entropy_coef})
    previous = previous_micro_batch_loss(bundle, experience, ppo, TEMPERATURE)
    previous.backward()
    expected = gradients(bundle)
    bundle.model.zero_grad(set_to_none=True)
    bundle.value_head.zero_grad(set_to_none=True)
    current, _ = micro_batch_loss(bundle, experience.without_padding_columns(), ppo, TEMPERATURE)
    current.backward()
    assert current.item() == pytest.approx(previous.item(), abs=1e-6)
    assert max((a - b).abs().max().item() for a, b in zip(gradients(bundle), expected)) < 1e-6
    assert max(g.abs().max().item() for g in expected) > 1e-3  # the comparison is not between zeros


def test_bucketed_trimmed_micro_batches_give_the_previous_mini_batch_gradient(experience_and_bundle):
    """Micro-batches of 3 rows, longest first, each without its padding columns: the gradient of
    the previous one-piece pass over the padded mini-batch, to 1e-6."""
    experience, bundle, ppo = experience_and_bundle
    previous_micro_batch_loss(bundle, experience, ppo, TEMPERATURE).backward()
    expected = gradients(bundle)
    optimizer = torch.optim.SGD(bundle.trainable_parameters(), lr=1.0)
    stepper = LocalStep(optimizer, bundle.trainable_parameters(), Distributed.single(), ppo.max_grad_norm)
    batches = RankMiniBatches(experience, Distributed.single())
    parts = batches.micro_batches(torch.arange(8), 3)
    assert [len(part) for part, _ in parts] == [3, 3, 2]
    assert parts[-1][0].rollout.input_ids.shape[1] < experience.rollout.input_ids.shape[1]  # padding cut
    assert sum(weight for _, weight in parts) == pytest.approx(1.0)
    accumulate_gradients(stepper, parts, lambda part: micro_batch_loss(bundle, part, ppo, TEMPERATURE))
    assert max((a - b).abs().max().item() for a, b in zip(gradients(bundle), expected)) < 1e-6


def test_no_entropy_pass_when_its_coefficient_is_zero(experience_and_bundle, monkeypatch):
    experience, bundle, ppo = experience_and_bundle

    def refuse(*args, **kwargs):
        raise AssertionError("entropy_from_logits ran with entropy_coef 0")

    monkeypatch.setattr(losses, "entropy_from_logits", refuse)
    _, stats = micro_batch_loss(bundle, experience, ppo, TEMPERATURE)
    # the sampled-token estimate of the rollout policy's entropy
    expected = -losses.masked_token_mean(experience.rollout.logprobs, experience.rollout.response_mask)
    assert stats["policy/entropy"].item() == pytest.approx(expected.item())
    with pytest.raises(AssertionError, match="entropy_coef 0"):
        micro_batch_loss(bundle, experience, ppo.model_copy(update={"entropy_coef": 0.01}), TEMPERATURE)


def test_dropping_padding_columns_keeps_every_real_value(experience_and_bundle):
    experience, bundle, _ = experience_and_bundle
    part = experience.select(torch.tensor([0, 2, 4]))  # answers of 3, 1 and 2 tokens
    trimmed = part.without_padding_columns()
    assert trimmed.rollout.response_ids.shape[1] == 3
    assert trimmed.rollout.query_mask[:, 0].any()  # the first column holds a real prompt token
    mask = trimmed.rollout.response_mask
    assert torch.equal(trimmed.advantages, part.advantages[:, :3])
    assert torch.equal(mask.sum(1), part.rollout.response_mask.sum(1))
    with torch.no_grad():
        full, _ = bundle.forward(part.rollout.input_ids, part.rollout.attention_mask)
        cut, _ = bundle.forward(trimmed.rollout.input_ids, trimmed.rollout.attention_mask, last=4)
    assert torch.allclose(cut[:, :3], full[:, -part.rollout.response_ids.shape[1] - 1:][:, :3], atol=1e-5)


def test_an_update_on_what_sampling_kept_equals_one_on_the_previous_scoring_pass(bundle, tiny_gpt2_config):
    """The rollout no longer runs a policy pass after sampling: its old log-probs and values are
    those sampling computed. The loss, statistics and gradients of an update's mini-batch on them
    equal those on the previous scoring pass's tensors to 1e-6 (answers ending at different
    columns, left-padded prompts, a moved adapter and value head)."""
    rollout = rollout_with_early_ends(perturbed(bundle), TEMPERATURE)
    kept = score(bundle, rollout, TEMPERATURE, 2)
    rescored = previous_score(bundle, kept.select(range(len(kept))), TEMPERATURE)
    torch.testing.assert_close(kept.ref_logprobs, rescored.ref_logprobs, atol=0, rtol=0)
    with torch.no_grad():  # the update's policy differs from the rollout's, so ratios and clipping act
        for parameter in bundle.trainable_parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    ppo = tiny_gpt2_config.training.ppo.model_copy(update={"mini_batch_size": 3, "ppo_epochs": 1})
    results = []
    for source in (kept, rescored):
        experience, _ = make_experience(source, torch.tensor([1.0, -0.5, 0.2]), torch.zeros(3), kl_coef=0.05,
                                        multiplier=None, ppo=ppo)
        bundle.model.zero_grad(set_to_none=True)
        bundle.value_head.zero_grad(set_to_none=True)
        loss, stats = micro_batch_loss(bundle, experience.without_padding_columns(), ppo, TEMPERATURE)
        loss.backward()
        results.append((loss.item(), stats, gradients(bundle)))
    (loss, stats, grads), (previous_loss, previous_stats, previous_grads) = results
    assert loss == pytest.approx(previous_loss, abs=1e-6)
    assert all(stats[key].item() == pytest.approx(previous_stats[key].item(), abs=1e-6) for key in stats)
    assert max((a - b).abs().max().item() for a, b in zip(grads, previous_grads)) < 1e-6
    assert max(g.abs().max().item() for g in previous_grads) > 1e-3  # the comparison is not between zeros


def test_the_fused_gelu_gives_the_previous_loss_and_gradients(experience_and_bundle):
    """The bundle's GPT-2 MLPs run `GELUTanh` (one kernel); with transformers' `NewGELUActivation`
    (eight ops) put back, the update's loss and gradients are the same to 1e-6."""
    experience, bundle, ppo = experience_and_bundle
    part = experience.without_padding_columns()
    mlps = [module for module in bundle.model.modules() if isinstance(getattr(module, "act", None), GELUTanh)]
    assert mlps
    results = []
    for activation in (NewGELUActivation, GELUTanh):
        for mlp in mlps:
            mlp.act = activation()
        results.append(loss_and_gradients(bundle, part, ppo))
    assert_same_loss_and_gradients(*results)


def test_sampling_with_merged_lora_gives_the_previous_rollout_and_update(bundle, tiny_gpt2_config, monkeypatch):
    """Sampling with each LoRA layer merged (`kernels.merged_lora`) draws the same tokens as
    peft's per-token low-rank path from the same seed; the kept log-probs and values, and the
    loss and gradients of an update on them, equal the previous ones to 1e-6."""
    perturbed(bundle)
    rollouts = []
    for merge in (lambda model: contextlib.nullcontext(0), bundle_module.merged_lora):
        monkeypatch.setattr(bundle_module, "merged_lora", merge)
        rollouts.append(score(bundle, rollout_with_early_ends(bundle, TEMPERATURE), TEMPERATURE, 3))
    previous, current = rollouts
    assert torch.equal(current.response_ids, previous.response_ids)
    torch.testing.assert_close(current.logprobs, previous.logprobs, atol=1e-6, rtol=0)
    torch.testing.assert_close(current.values, previous.values, atol=1e-6, rtol=0)
    with torch.no_grad():
        for parameter in bundle.trainable_parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    ppo = tiny_gpt2_config.training.ppo.model_copy(update={"mini_batch_size": 3, "ppo_epochs": 1})
    results = []
    for rollout in rollouts:
        experience, _ = make_experience(rollout, torch.tensor([1.0, -0.5, 0.2]), torch.zeros(3), kl_coef=0.05,
                                        multiplier=None, ppo=ppo)
        results.append(loss_and_gradients(bundle, experience.without_padding_columns(), ppo))
    assert_same_loss_and_gradients(*results)


def test_fused_lora_gives_the_previous_loss_and_gradients(experience_and_bundle, monkeypatch):
    """The update's passes add each LoRA update inside the low-rank GEMM (`kernels.fused_lora`);
    with peft's forward (scale and add over the output) the loss and gradients are the same to 1e-6."""
    experience, bundle, ppo = experience_and_bundle
    part = experience.without_padding_columns()
    results = []
    for fuse in (lambda model: contextlib.nullcontext(0), bundle_module.fused_lora):
        monkeypatch.setattr(bundle_module, "fused_lora", fuse)
        results.append(loss_and_gradients(bundle, part, ppo))
    assert_same_loss_and_gradients(*results)
