"""Stateful controllers of the PPO loop: KL coefficient, Lagrange multiplier, reward scale.

All share one shape: `update(x)` moves the state, `value` reads it, `reset()` returns to the
initial state, `state_dict()` / `load_state_dict()` round-trip it through a checkpoint. The
constructors raise `ValueError` naming the bad argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from clinical_rlhf.config import LagrangianConfig, PPOConfig


def _require(condition: bool, name: str, value: object, rule: str) -> None:
    if not condition:
        raise ValueError(f"{name} must be {rule}, got {value!r}")


class FixedKLController:
    """beta stays at its initial value (rollbacks may still scale it)."""

    def __init__(self, init_kl_coef: float) -> None:
        _require(init_kl_coef >= 0.0, "init_kl_coef", init_kl_coef, "non-negative")
        self.init_kl_coef = init_kl_coef
        self.value = init_kl_coef

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def scale(self, factor: float) -> None:
        """Multiply beta, e.g. by `rollback.kl_coef_factor` after a rollback."""
        self.value *= factor

    def reset(self) -> None:
        self.value = self.init_kl_coef

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Proportional controller of beta towards a target KL (Ziegler et al. 2019, sec. 2.2):

        e_t     = clip(KL_t / KL_target - 1, -0.2, 0.2)
        beta_t+1 = beta_t * (1 + e_t * n_steps / horizon)
    where `n_steps` is the number of samples of the batch that measured KL_t.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        super().__init__(init_kl_coef)
        _require(target > 0.0, "target", target, "positive")
        _require(horizon > 0, "horizon", horizon, "positive")
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


def build_kl_controller(ppo: PPOConfig) -> FixedKLController:
    """The controller `training.ppo.adaptive_kl` asks for."""
    if ppo.adaptive_kl:
        return AdaptiveKLController(ppo.init_kl_coef, ppo.kl_target, ppo.kl_horizon)
    return FixedKLController(ppo.init_kl_coef)


class LagrangeMultiplier:
    """lambda >= 0 of the constrained objective max J_r s.t. J_c <= d (Safe RLHF, Dai et al. 2023).

    lambda is parameterised as exp(log_lambda) so that it never turns negative. Each update is
    one gradient-ascent step on log_lambda of the Lagrangian term lambda * (J_c - d):

        log_lambda <- log_lambda + lr * lambda * (J_c - d),   then lambda <= max_multiplier
    so lambda grows while the mean cost J_c (unsafe ratio) exceeds the threshold d and shrinks
    once it is below (the sign is tested in tests/rl/test_controllers.py).
    """

    def __init__(self, init_multiplier: float, learning_rate: float, max_multiplier: float,
                 cost_threshold: float) -> None:
        _require(init_multiplier >= 0.0, "init_multiplier", init_multiplier, "non-negative")
        _require(learning_rate > 0.0, "learning_rate", learning_rate, "positive")
        _require(max_multiplier > 0.0, "max_multiplier", max_multiplier, "positive")
        _require(init_multiplier <= max_multiplier, "init_multiplier", init_multiplier,
                 f"at most max_multiplier ({max_multiplier})")
        self.init_multiplier = init_multiplier
        self.learning_rate = learning_rate
        self.max_multiplier = max_multiplier
        self.cost_threshold = cost_threshold
        self.log_multiplier = math.log(max(init_multiplier, 1e-8))

    @property
    def value(self) -> float:
        return math.exp(self.log_multiplier)

    def update(self, mean_cost: float) -> float:
        gradient = self.value * (mean_cost - self.cost_threshold)
        self.log_multiplier = min(self.log_multiplier + self.learning_rate * gradient,
                                  math.log(self.max_multiplier))
        return self.value

    def reset(self) -> None:
        self.log_multiplier = math.log(max(self.init_multiplier, 1e-8))

    def state_dict(self) -> dict[str, float]:
        return {"log_multiplier": self.log_multiplier}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.log_multiplier = float(state["log_multiplier"])


def build_lagrange_multiplier(cfg: LagrangianConfig) -> LagrangeMultiplier:
    return LagrangeMultiplier(cfg.init_multiplier, cfg.learning_rate, cfg.max_multiplier, cfg.cost_threshold)


@dataclass
class RunningMoments:
    """Running mean and standard deviation of every value seen (Chan et al. parallel update).

    `update(batch)` merges a batch of scalars; `std` is the population standard deviation, used
    to scale rewards to unit spread when `training.ppo.reward_normalization` is on.
    """

    count: float = 0.0
    mean: float = 0.0
    m2: float = field(default=0.0, repr=False)

    def update(self, values: list[float]) -> None:
        n = float(len(values))
        if n == 0:
            return
        batch_mean = sum(values) / n
        batch_m2 = sum((v - batch_mean) ** 2 for v in values)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 0 else 1.0

    def reset(self) -> None:
        self.count, self.mean, self.m2 = 0.0, 0.0, 0.0

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.m2 = float(state["count"]), float(state["mean"]), float(state["m2"])


class UnsafeWindow:
    """Mean unsafe ratio of the last `window` iterations, compared with the best checkpoint's.

    `update(unsafe_ratio)` appends; `degraded(best, margin)` is true once the window is full and
    its mean exceeds `best + margin` (the rollback condition of `training.rollback`).
    """

    def __init__(self, window: int) -> None:
        _require(window > 0, "window", window, "positive")
        self.window = window
        self.values: list[float] = []

    def update(self, unsafe_ratio: float) -> float:
        self.values = [*self.values, float(unsafe_ratio)][-self.window:]
        return self.value

    @property
    def value(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0

    @property
    def full(self) -> bool:
        return len(self.values) == self.window

    def degraded(self, best: float | None, margin: float) -> bool:
        return best is not None and self.full and self.value > best + margin

    def reset(self) -> None:
        self.values = []

    def state_dict(self) -> dict[str, list[float]]:
        return {"values": list(self.values)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self.values = [float(v) for v in state["values"]][-self.window:]
