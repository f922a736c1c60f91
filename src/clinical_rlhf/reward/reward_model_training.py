"""`train_reward_model(cfg)`: fit the Bradley-Terry reward model on expert preferences.

Each step takes `reward_model.batch_size` decisive pairs of similar length, scores the chosen
and the rejected answers in one forward pass (dropout off), and minimises
-log sigmoid(r_chosen - r_rejected) (`preference_losses.bradley_terry_loss`) over the LoRA
adapter and the head, with AdamW, a linear decay of the learning rate to zero and the gradient
norm clipped at 1. Ties are skipped (they have no winner) and counted. Afterwards the held-out
pairs are scored: accuracy overall and per `source`, and the mean and spread of the held-out
scores, which `reward.learned` uses to put a raw score on [0, 1].
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from clinical_rlhf.config import Config
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.feedback.builder import shipped_paths
from clinical_rlhf.feedback.preferences import PreferenceRecord, load_preferences
from clinical_rlhf.models.fingerprint import base_model_fingerprint
from clinical_rlhf.models.sft import length_bucketed_batches
from clinical_rlhf.reward.preference_losses import bradley_terry_loss
from clinical_rlhf.reward.reward_model import RewardModel, build_reward_model, save_reward_model
from clinical_rlhf.seeding import seed_everything

MAX_GRAD_NORM = 1.0
"""Global gradient-norm clip per step (as the policy's PPO and DPO updates)."""


@dataclass
class SourceAccuracy:
    correct: float
    pairs: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.pairs if self.pairs else float("nan")


@dataclass
class RewardModelReport:
    """What a training run did and how well the model ranks held-out pairs."""

    directory: str
    train_file: str
    heldout_file: str
    train_pairs: int
    """Decisive pairs trained on."""
    heldout_pairs: int
    """Decisive held-out pairs evaluated."""
    ties_skipped: dict[str, int]
    """Tie judgements left out, per split (`train`, `heldout`)."""
    truncated: int
    """Sequences cut to `reward_model.max_length` (both splits)."""
    steps: int
    seconds: float
    train_loss: float
    """Mean Bradley-Terry loss of the last epoch."""
    train_accuracy: float
    """Share of the last epoch's pairs ranked right while training (before each step)."""
    heldout_loss: float
    heldout_accuracy: float
    """Share of held-out decisive pairs whose chosen answer scores higher (a tie counts half)."""
    per_source: dict[str, dict[str, float]] = field(default_factory=dict)
    """Held-out accuracy and pairs per record `source`."""
    score_mean: float = 0.0
    """Mean raw score of the held-out answers (both sides): the centre of `reward.learned`."""
    score_std: float = 1.0
    """Their standard deviation: one unit of `reward.learned`'s logistic squashing."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Pair:
    chosen: list[int]
    rejected: list[int]
    source: str


def _encode(model: RewardModel, records: Sequence[PreferenceRecord]) -> tuple[list[_Pair], int, int]:
    """(pairs, ties skipped, sequences truncated)."""
    pairs, ties, truncated = [], 0, 0
    for record in records:
        if record.is_tie:
            ties += 1
            continue
        turns = [dict(turn) for turn in record.messages]
        chosen, cut_chosen = model.encode(record.prompt, record.chosen, turns)
        rejected, cut_rejected = model.encode(record.prompt, record.rejected, turns)
        truncated += cut_chosen + cut_rejected
        pairs.append(_Pair(chosen, rejected, record.source or "unknown"))
    return pairs, ties, truncated


def _scores(model: RewardModel, batch: Sequence[_Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen and rejected scores of a batch from one forward pass over 2 x len(batch) rows."""
    input_ids, attention_mask = model.collate([p.chosen for p in batch] + [p.rejected for p in batch])
    scores = model(input_ids, attention_mask)
    return scores[:len(batch)], scores[len(batch):]


@torch.no_grad()
def evaluate_pairs(model: RewardModel, pairs: Sequence[_Pair], batch_size: int) -> dict[str, object]:
    """Held-out loss, accuracy (an equal score counts half), per-source accuracy, score spread."""
    model.eval()
    losses, per_source, all_scores = [], {}, []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        chosen, rejected = _scores(model, batch)
        loss, _ = bradley_terry_loss(chosen, rejected)
        losses.append(loss.item() * len(batch))
        all_scores += chosen.tolist() + rejected.tolist()
        for pair, c, r in zip(batch, chosen.tolist(), rejected.tolist()):
            entry = per_source.setdefault(pair.source, SourceAccuracy(0.0, 0))
            entry.correct += 1.0 if c > r else 0.5 if c == r else 0.0
            entry.pairs += 1
    n = len(pairs)
    scores = torch.tensor(all_scores) if all_scores else torch.zeros(1)
    return {
        "loss": sum(losses) / n if n else float("nan"),
        "accuracy": sum(e.correct for e in per_source.values()) / n if n else float("nan"),
        "per_source": {name: {"accuracy": e.accuracy, "pairs": e.pairs} for name, e in sorted(per_source.items())},
        "score_mean": scores.mean().item(),
        "score_std": max(scores.std().item() if scores.numel() > 1 else 1.0, 1e-6),
    }


def preference_paths(cfg: Config) -> tuple[Path, Path]:
    """(train, held-out) preference files: the configured ones, else the shipped set."""
    shipped_train, shipped_heldout = shipped_paths()
    rm = cfg.reward_model
    return rm.train_file or shipped_train, rm.heldout_file or shipped_heldout


def output_directory(cfg: Config) -> Path:
    return cfg.reward_model.output_dir or cfg.run_dir / "reward_model"


def train_reward_model(cfg: Config, *, progress: Callable[[int, int, float], None] | None = None,
                       on_phase: Callable[[str], None] | None = None) -> RewardModelReport:
    """Train, evaluate and save the reward model `cfg.reward_model` describes.

    `progress(step, total_steps, loss)` after every optimizer step; `on_phase(text)` when a stage
    starts. Preference files are validated first (every bad line in one InputDataError), before
    any model is loaded.
    """
    rm, phase = cfg.reward_model, on_phase or (lambda text: None)
    started = time.monotonic()
    train_path, heldout_path = preference_paths(cfg)
    train_records, heldout_records = load_preferences(train_path), load_preferences(heldout_path)
    if cfg.training.torch_threads is not None:
        torch.set_num_threads(cfg.training.torch_threads)
    seed_everything(rm.seed, cfg.training.deterministic)
    phase("building the reward model's backbone")
    model = build_reward_model(cfg)
    fingerprint = base_model_fingerprint(model.value_model)
    train, train_ties, train_cut = _encode(model, train_records)
    heldout, heldout_ties, heldout_cut = _encode(model, heldout_records)
    if not train:
        raise InputDataError(f"{train_path}: no decisive preference to train on (all {train_ties} are ties)")
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=rm.learning_rate)
    generator = torch.Generator().manual_seed(rm.seed)
    lengths = [len(p.chosen) + len(p.rejected) for p in train]
    plan = [length_bucketed_batches(lengths, rm.batch_size, generator) for _ in range(rm.epochs)]
    total = sum(len(epoch) for epoch in plan)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)
    phase(f"training on {len(train)} pairs ({train_ties} ties skipped), {total} steps")
    # Dropout off while training, as TRL's reward trainer does by default (`disable_dropout`):
    # a score must not depend on a dropout draw, and on CPU dropout costs ~40% of a forward pass.
    model.eval()
    step, epoch_loss, epoch_accuracy = 0, 0.0, 0.0
    for epoch in plan:
        epoch_loss = epoch_accuracy = 0.0
        for indices in epoch:
            batch = [train[i] for i in indices]
            chosen, rejected = _scores(model, batch)
            loss, stats = bradley_terry_loss(chosen, rejected)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            scheduler.step()
            step += 1
            epoch_loss += loss.item() * len(batch)
            epoch_accuracy += stats["accuracy"] * len(batch)
            if progress is not None:
                progress(step, total, loss.item())
    phase(f"evaluating on {len(heldout)} held-out pairs")
    result = evaluate_pairs(model, heldout, rm.batch_size)
    directory = output_directory(cfg)
    report = RewardModelReport(
        directory=str(directory), train_file=str(train_path), heldout_file=str(heldout_path),
        train_pairs=len(train), heldout_pairs=len(heldout), ties_skipped={"train": train_ties, "heldout": heldout_ties},
        truncated=train_cut + heldout_cut, steps=step, seconds=0.0, train_loss=epoch_loss / len(train),
        train_accuracy=epoch_accuracy / len(train), heldout_loss=result["loss"], heldout_accuracy=result["accuracy"],
        per_source=result["per_source"], score_mean=result["score_mean"], score_std=result["score_std"])
    report.seconds = time.monotonic() - started
    phase(f"writing {directory}")
    save_reward_model(directory, model, cfg, {
        "backbone": {"name": model.entry.id, "source": model.source, "fingerprint": fingerprint},
        "calibration": {"mean": report.score_mean, "std": report.score_std},
        "batch_size": rm.batch_size,
        "report": report.to_dict(),
    })
    return report
