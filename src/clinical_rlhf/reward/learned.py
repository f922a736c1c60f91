"""`reward.learned`: a trained preference reward model as one more reward component.

    learned = LearnedReward.load("runs/demo/reward_model")
    learned.score_batch(prompts, answers)      # [0, 1] each, batched

A Bradley-Terry score has no fixed zero or unit (adding a constant changes no preference), so
the raw score r is put on [0, 1] with the model's own held-out statistics, recorded when it was
trained:

    learned = sigmoid((r - mean) / std)

An answer scored like the average held-out answer gets 0.5; one standard deviation better, 0.73.
`MultiObjectiveReward` adds `reward.learned_weight * learned` to the rule-based total of every
answer the guard did not veto; a vetoed answer is never scored by it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from clinical_rlhf.reward.reward_model import RewardModel, load_reward_model


class LearnedReward:
    """Scores answers with a trained reward model, squashed to [0, 1]."""

    def __init__(self, model: RewardModel, *, mean: float, std: float, batch_size: int = 16,
                 directory: Path | None = None) -> None:
        if not math.isfinite(mean) or not math.isfinite(std) or std <= 0:
            raise ValueError(f"mean must be finite and std positive, got mean={mean}, std={std}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.mean = mean
        self.std = std
        self.batch_size = batch_size
        self.directory = directory

    @classmethod
    def load(cls, directory: str | Path, *, key: str = "reward.learned_model",
             device: str | None = None) -> LearnedReward:
        """Load and verify a `clinical-rlhf train-reward` directory (see `load_reward_model` for
        the errors: ConfigError when `directory` holds no reward model, CheckpointError when it
        is damaged or was trained on another backbone)."""
        model, manifest = load_reward_model(directory, key=key, device=device)
        calibration = manifest.get("calibration", {})
        batch_size = manifest.get("batch_size") or 16
        return cls(model, mean=float(calibration.get("mean", 0.0)), std=float(calibration.get("std", 1.0)),
                   batch_size=int(batch_size), directory=Path(directory))

    def raw_scores(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """Bradley-Terry scores as the model gives them (no squashing)."""
        return self.model.score(list(prompts), list(answers), batch_size=self.batch_size).tolist()

    def score_batch(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float]:
        """sigmoid((r - mean) / std) of each answer, in [0, 1], in input order."""
        if not prompts:
            return []
        return [squash(raw, self.mean, self.std) for raw in self.raw_scores(prompts, answers)]


def squash(raw: float, mean: float, std: float) -> float:
    """sigmoid((raw - mean) / std), computed without overflow for any finite raw score."""
    z = (raw - mean) / std
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
