"""DPO / IPO / conservative-DPO loss against hand-worked values, a naive per-pair loop, and the
closed-form gradient."""

import math

import pytest
import torch

from clinical_rlhf.rl.losses import answer_logprobs, dpo_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def naive_dpo(pc, pr, rc, rr, beta, loss_type="sigmoid", eps=0.0):
    """One pair at a time, plain floats: the paper's formulas written out."""
    total, accuracy = 0.0, 0.0
    for a, b, c, d in zip(pc, pr, rc, rr):
        h = (a - c) - (b - d)
        if loss_type == "sigmoid":
            total += -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h)
        else:
            total += (h - 1 / (2 * beta)) ** 2
        margin = beta * (a - c) - beta * (b - d)
        accuracy += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
    return total / len(pc), accuracy / len(pc)


def test_dpo_loss_matches_a_hand_computation():
    # policy chosen -10, rejected -12; reference chosen -11, rejected -11
    # h = (-10 + 11) - (-12 + 11) = 1 + 1 = 2; beta 0.5 -> beta*h = 1
    # L = -log sigmoid(1) = log(1 + e^-1) = 0.3132617
    loss, stats = dpo_loss(torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]),
                           torch.tensor([-11.0]), beta=0.5)
    assert loss.item() == pytest.approx(0.31326169, abs=1e-6)
    assert stats["rewards/chosen"].item() == pytest.approx(0.5)     # 0.5 * (-10 + 11)
    assert stats["rewards/rejected"].item() == pytest.approx(-0.5)  # 0.5 * (-12 + 11)
    assert stats["rewards/margin"].item() == pytest.approx(1.0)
    assert stats["rewards/accuracy"].item() == 1.0
    assert stats["logps/chosen"].item() == -10.0 and stats["logps/rejected"].item() == -12.0


def test_policy_equal_to_reference_gives_log_2_and_chance_accuracy():
    logps = torch.tensor([-3.0, -7.5, -20.0])
    loss, stats = dpo_loss(logps, logps + 1, logps, logps + 1, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2.0))
    assert stats["rewards/margin"].item() == 0.0
    assert stats["rewards/accuracy"].item() == 0.5  # ties count half


def test_label_smoothing_and_ipo_hand_values():
    args = (torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0]), torch.tensor([-11.0]))
    # cDPO, eps 0.2, beta*h = 1: 0.8 * log(1 + e^-1) + 0.2 * log(1 + e^1) = 0.25060935 + 0.26265233
    smoothed, _ = dpo_loss(*args, beta=0.5, label_smoothing=0.2)
    assert smoothed.item() == pytest.approx(0.8 * 0.31326169 + 0.2 * 1.31326169, abs=1e-6)
    # IPO: h = 2, beta 0.5 -> (2 - 1/(2*0.5))^2 = (2 - 1)^2 = 1
    ipo, _ = dpo_loss(*args, beta=0.5, loss_type="ipo")
    assert ipo.item() == pytest.approx(1.0)
    # IPO is minimal (0) at h = 1/(2 beta), not at h -> infinity
    at_target, _ = dpo_loss(torch.tensor([-10.0]), torch.tensor([-11.0]), torch.tensor([-11.0]),
                            torch.tensor([-11.0]), beta=0.5, loss_type="ipo")
    assert at_target.item() == pytest.approx(0.0)


@pytest.mark.parametrize("loss_type,eps", [("sigmoid", 0.0), ("sigmoid", 0.1), ("ipo", 0.0)])
def test_batched_loss_matches_a_naive_per_pair_loop(loss_type, eps):
    generator = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-20 * torch.rand(64, generator=generator, dtype=torch.float64) for _ in range(4))
    pc[:3], rc[:3], pr[:3], rr[:3] = -5.0, -5.0, -6.0, -6.0  # three exact ties
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.3, loss_type=loss_type, label_smoothing=eps)
    expected_loss, expected_accuracy = naive_dpo(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(), 0.3, loss_type, eps)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-12)
    assert stats["rewards/accuracy"].item() == pytest.approx(expected_accuracy)


def test_gradient_matches_the_closed_form_and_points_the_right_way():
    # dL/d logpi(y_w) = -beta * sigmoid(-beta h) / B, dL/d logpi(y_l) = +beta * sigmoid(-beta h) / B
    pc = torch.tensor([-10.0, -4.0], requires_grad=True)
    pr = torch.tensor([-12.0, -3.0], requires_grad=True)
    rc, rr = torch.tensor([-11.0, -4.0]), torch.tensor([-11.0, -4.0])
    beta = 0.5
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=beta)
    loss.backward()
    h = (pc - rc) - (pr - rr)
    expected = beta * torch.sigmoid(-beta * h.detach()) / 2
    torch.testing.assert_close(pc.grad, -expected)
    torch.testing.assert_close(pr.grad, expected)
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descent raises chosen, lowers rejected
    # finite differences agree
    with torch.no_grad():
        step = 1e-3
        up, _ = dpo_loss(pc + torch.tensor([step, 0.0]), pr, rc, rr, beta=beta)
        down, _ = dpo_loss(pc - torch.tensor([step, 0.0]), pr, rc, rr, beta=beta)
    assert ((up - down) / (2 * step)).item() == pytest.approx(pc.grad[0].item(), rel=1e-3)


def test_reference_gets_no_gradient_and_stats_are_detached():
    pc, pr = torch.tensor([-1.0], requires_grad=True), torch.tensor([-2.0], requires_grad=True)
    rc, rr = torch.tensor([-1.5], requires_grad=True), torch.tensor([-1.5], requires_grad=True)
    loss, stats = dpo_loss(pc, pr, rc.detach(), rr.detach(), beta=0.1)
    loss.backward()
    assert rc.grad is None and rr.grad is None
    assert all(not value.requires_grad for value in stats.values())


def test_answer_logprobs_sums_or_averages_real_tokens_only():
    token_logprobs = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -99.0, -99.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(answer_logprobs(token_logprobs, mask), torch.tensor([-3.0, -0.5]))
    torch.testing.assert_close(answer_logprobs(token_logprobs, mask, "mean"), torch.tensor([-1.5, -0.5]))


def test_invalid_arguments_name_the_argument():
    one = torch.tensor([-1.0])
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(one, one, one, one, beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(one, one, one, one, beta=0.1, label_smoothing=0.5)
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(one, one, one, one, beta=0.1, loss_type="hinge")
    with pytest.raises(ValueError, match="sigmoid loss only"):
        dpo_loss(one, one, one, one, beta=0.1, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ValueError, match="reduction"):
        answer_logprobs(one[None], one[None], "max")
