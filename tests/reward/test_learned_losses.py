"""The reward model's pure maths: Bradley-Terry loss against a hand computation, its stability,
gradient and statistics; the last-token read-out for either padding; the [0, 1] squashing."""

import math

import pytest
import torch

from clinical_rlhf.reward.learned import squash
from clinical_rlhf.reward.preference_losses import (
    bradley_terry_loss,
    last_token_scores,
    pairwise_accuracy,
)


def test_bradley_terry_loss_matches_a_hand_computation():
    chosen = torch.tensor([2.0, 0.5, -1.0])
    rejected = torch.tensor([1.0, 1.5, -1.0])
    loss, stats = bradley_terry_loss(chosen, rejected)
    # margins 1, -1, 0: -log sigmoid(m) = log(1 + e^-m)
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1)) + math.log(2)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.7732, abs=1e-4)
    assert stats == {"accuracy": pytest.approx(0.5), "margin": pytest.approx(0.0)}


def test_gradient_is_minus_sigmoid_of_minus_the_margin():
    chosen = torch.tensor([0.3, -2.0], requires_grad=True)
    rejected = torch.tensor([0.0, 1.0], requires_grad=True)
    loss, _ = bradley_terry_loss(chosen, rejected)
    loss.backward()
    margin = torch.tensor([0.3, -3.0])
    torch.testing.assert_close(chosen.grad, -torch.sigmoid(-margin) / 2)
    torch.testing.assert_close(rejected.grad, torch.sigmoid(-margin) / 2)


def test_large_margins_stay_finite_where_log_sigmoid_of_float32_would_not():
    chosen, rejected = torch.tensor([-200.0, 200.0]), torch.tensor([0.0, 0.0])
    naive = -torch.log(torch.sigmoid(chosen - rejected)).mean()
    assert math.isinf(naive.item())
    loss, _ = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx(100.0)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="1-D of one shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="1-D of one shape"):
        bradley_terry_loss(torch.zeros(2, 1), torch.zeros(2, 1))
    assert math.isnan(pairwise_accuracy(torch.zeros(0), torch.zeros(0)))


def test_last_token_scores_read_the_last_real_token_for_left_and_right_padding():
    values = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    assert last_token_scores(values, right).tolist() == [1.0, 7.0, 8.0]
    assert last_token_scores(values, left).tolist() == [3.0, 7.0, 11.0]


def test_squash_is_a_calibrated_sigmoid_without_overflow():
    assert squash(1.5, 1.5, 2.0) == 0.5
    assert squash(3.5, 1.5, 2.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert squash(-1e6, 0.0, 1.0) == 0.0 and squash(1e6, 0.0, 1.0) == 1.0
