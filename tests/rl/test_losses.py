"""Numeric tests of rl/losses.py against values worked out by hand (in the comments)."""

import math
import threading

import pytest
import torch

from clinical_rlhf.rl import losses as L


def test_masked_token_mean_ignores_padding_and_empty_rows():
    values = torch.tensor([[1.0, 2.0, 99.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # all real tokens: (1 + 2 + 4) / 3
    assert L.masked_token_mean(values, mask).item() == pytest.approx(7 / 3)
    # per sequence: 1.5 and 4
    assert L.masked_token_mean(values, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])
    assert L.masked_token_mean(values, torch.zeros_like(mask)).item() == 0.0


def test_masked_whiten_hand_example():
    # real tokens 1, 2, 3: mean 2, unbiased variance 1 -> -1, 0, 1; padding stays 0
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert L.masked_whiten(values, mask).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    # without the shift the mean (2) is kept: -1 + 2, 0 + 2, 1 + 2
    assert L.masked_whiten(values, mask, shift_mean=False).tolist()[0] == pytest.approx([1.0, 2.0, 3.0, 0.0], abs=1e-6)


def test_logprobs_of_tokens_matches_naive_log_softmax_with_temperature():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=generator)
    tokens = torch.randint(0, 11, (3, 5), generator=generator)
    naive = torch.log_softmax(logits / 0.7, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(L.logprobs_of_tokens(logits, tokens, temperature=0.7), naive, atol=1e-6)


def test_entropy_of_uniform_and_peaked_distributions():
    uniform = torch.zeros(1, 1, 4)
    assert L.entropy_from_logits(uniform).item() == pytest.approx(math.log(4))
    # p = (0.5, 0.25, 0.25): H = 0.5 ln 2 + 2 * 0.25 ln 4 = 1.5 ln 2
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    assert L.entropy_from_logits(logits).item() == pytest.approx(1.5 * math.log(2), abs=1e-6)


def test_kl_estimators_hand_values():
    # policy p = 0.5, reference q = 0.25: log r = ln(0.25 / 0.5) = -ln 2
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert L.kl_estimate(logp, ref, "k1").item() == pytest.approx(math.log(2))
    # k3 = (r - 1) - log r = -0.5 + ln 2
    assert L.kl_estimate(logp, ref, "k3").item() == pytest.approx(-0.5 + math.log(2))
    with pytest.raises(ValueError, match="estimator"):
        L.kl_estimate(logp, ref, "k2")


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_estimators_are_unbiased_for_sampled_tokens(estimator):
    policy = torch.tensor([0.6, 0.3, 0.1])
    reference = torch.tensor([0.2, 0.5, 0.3])
    exact = (policy * (policy / reference).log()).sum().item()
    generator = torch.Generator().manual_seed(1)
    tokens = torch.multinomial(policy, 200_000, replacement=True, generator=generator)
    estimate = L.kl_estimate(policy.log()[tokens], reference.log()[tokens], estimator).mean().item()
    assert estimate == pytest.approx(exact, abs=0.01)
    if estimator == "k3":
        assert (L.kl_estimate(policy.log()[tokens], reference.log()[tokens], "k3") >= 0).all()


def test_per_token_rewards_put_score_on_last_real_token():
    scores = torch.tensor([1.0, -1.0])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = L.per_token_rewards(scores, kl, mask, kl_coef=0.5)
    # -0.5 * kl everywhere real; +score at index 2 (row 0) and index 1 (row 1); padding 0
    expected = [[-0.05, -0.10, -0.15 + 1.0], [-0.20, -0.25 - 1.0, 0.0]]
    assert rewards.tolist() == [pytest.approx(row) for row in expected]


def test_gae_hand_worked_example():
    # gamma 1, lambda 0.5, V = (0.5, 0.6, 0.7), reward 1 at the end:
    # delta = (0.1, 0.1, 0.3); A2 = 0.3, A1 = 0.1 + 0.5*0.3 = 0.25, A0 = 0.1 + 0.5*0.25 = 0.225
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    advantages, returns = L.gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.5)
    assert advantages.tolist()[0] == pytest.approx([0.225, 0.25, 0.3])
    assert returns.tolist()[0] == pytest.approx([0.725, 0.85, 1.0])


def test_gae_with_discount_and_padding():
    # gamma 0.9, lambda 0.95, two real tokens then padding (its reward and value are ignored):
    # delta1 = 2 - 1 = 1, A1 = 1; delta0 = 0.9*1 - 1 = -0.1, A0 = -0.1 + 0.855*1 = 0.755
    rewards = torch.tensor([[0.0, 2.0, 99.0]])
    values = torch.tensor([[1.0, 1.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    advantages, returns = L.gae_advantages(rewards, values, mask, gamma=0.9, lam=0.95)
    assert advantages.tolist()[0] == pytest.approx([0.755, 1.0, 0.0])
    assert returns.tolist()[0] == pytest.approx([1.755, 2.0, 0.0])


def test_group_advantages_normalise_within_each_prompt():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    # group 1: mean 2, std 1 -> -1, 0, 1; group 2 has no spread -> 0
    assert L.group_advantages(scores, 3).tolist() == pytest.approx([-1, 0, 1, 0, 0, 0], abs=1e-5)
    with pytest.raises(ValueError, match="group_size"):
        L.group_advantages(scores, 1)
    with pytest.raises(ValueError, match="do not split"):
        L.group_advantages(scores, 4)


def test_sequence_baseline_advantages():
    costs = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert L.sequence_baseline_advantages(costs).tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])
    assert L.sequence_baseline_advantages(costs, group_size=2).tolist() == pytest.approx([0.5, -0.5, 0.0, 0.0])


def test_constrained_advantages_formula():
    # (1 - 1 * 0.5) / (1 + 1) = 0.25; with lambda 0 the reward advantage is untouched
    assert L.constrained_advantages(torch.tensor(1.0), torch.tensor(0.5), 1.0).item() == pytest.approx(0.25)
    assert L.constrained_advantages(torch.tensor(1.0), torch.tensor(0.5), 0.0).item() == pytest.approx(1.0)


def test_policy_loss_hand_example():
    # ratios 1.5, 0.5, 1.0 with A = 1, -1, 2 and eps 0.2:
    # token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(0.5, 0.8) = 0.8 (clipped);
    # token 3: -2 (ratio 1, not clipped) -> loss (-1.2 + 0.8 - 2) / 3 = -0.8, clipfrac 2/3
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.0, 7.0]]))
    old = torch.zeros(1, 4)
    advantages = torch.tensor([[1.0, -1.0, 2.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = L.policy_loss(logp, old, advantages, mask, clip_range=0.2)
    assert loss.item() == pytest.approx(-0.8)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    # k3: (0.5 - ln 1.5) + (-0.5 - ln 0.5) + 0, over 3 tokens
    expected_kl = ((0.5 - math.log(1.5)) + (-0.5 + math.log(2))) / 3
    assert stats["approx_kl"].item() == pytest.approx(expected_kl)


def test_policy_loss_gradient_is_advantage_weighted_at_ratio_one():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = L.policy_loss(logp, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    # d/dlogp of -A * exp(logp - old) at ratio 1 is -A, averaged over 2 tokens
    assert logp.grad.tolist()[0] == pytest.approx([-1.0, 0.5])


def test_value_loss_hand_example():
    # token 1: V 0.5, old 0, R 1: (0.5-1)^2 = 0.25, clipped V 0.2: (0.2-1)^2 = 0.64 -> 0.64
    # token 2: V -0.1, old 0, R -1: 0.81 both -> 0.81;  loss 0.5 * (0.64 + 0.81) / 2 = 0.3625
    values = torch.tensor([[0.5, -0.1, 3.0]])
    loss, stats = L.value_loss(values, torch.zeros(1, 3), torch.tensor([[1.0, -1.0, 0.0]]),
                               torch.tensor([[1.0, 1.0, 0.0]]), clip_range=0.2)
    assert loss.item() == pytest.approx(0.3625)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_reductions_over_processes_equal_those_of_the_whole_batch():
    """Two shards reduced in two threads whose `sum_over` is an all-reduce between them: each
    gets the whole batch's token mean and variance, and its own rows of the whole batch whitened."""
    generator = torch.Generator().manual_seed(3)
    values = torch.randn(6, 5, generator=generator)
    mask = (torch.arange(5) < torch.tensor([[5], [2], [4], [1], [3], [5]])).float()
    rows = (slice(0, 3), slice(3, 6))
    barrier, slots = threading.Barrier(2), [None, None]

    def all_reduce(rank):
        def sum_over(tensor):
            slots[rank] = tensor.clone()
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            return total
        return sum_over

    for function in (L.masked_token_mean, L.masked_variance, L.masked_whiten):
        results = [None, None]

        def run(rank):
            results[rank] = function(values[rows[rank]], mask[rows[rank]], sum_over=all_reduce(rank))

        threads = [threading.Thread(target=run, args=(rank,)) for rank in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        whole = function(values, mask)
        for rank in (0, 1):
            expected = whole if whole.dim() == 0 else whole[rows[rank]]
            assert torch.allclose(results[rank], expected, atol=1e-6), function.__name__
