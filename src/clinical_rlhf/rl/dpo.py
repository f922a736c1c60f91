"""`training.algorithm: dpo`: Direct Preference Optimization on expert preference pairs.

DPO (Rafailov et al. 2023) trains the policy on the preferences directly: no sampling, no reward
model and no critic in the loop. The reference policy is the same model with its LoRA adapter
disabled (`bundle.reference()`), so no second copy is held. One step: a batch of pairs ->
policy log-probs of both answers (one forward pass, micro-batched) -> `losses.dpo_loss` against
the reference's -> AdamW step -> one metrics dict -> checkpoint every `checkpoint.save_frequency`
steps. It shares the factory's bundle, the checkpoint manager (resume with `--resume auto|PATH`),
the tracker, the audit log and the held-out before/after evaluation (guard + reward on sampled
answers) with PPO, and adds the held-out preference accuracy and margin before, during and after.

Reference log-probs are computed once, before the first step, for every training and held-out pair:
the reference is frozen and dropout stays off (the bundle is in eval mode, as for PPO and as TRL's
`disable_dropout` default), so a pair's reference log-probs never change. That is one no-grad pass
per pair instead of one per pair and epoch, and the held-out ones serve every evaluation. They are
not stored in checkpoints: recomputing them on resume is deterministic and takes one pass.

Ties are skipped (`feedback.decisive`): they name no winner. Their count is logged and audited.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import torch

from clinical_rlhf.config import Config
from clinical_rlhf.errors import CheckpointError, InputDataError
from clinical_rlhf.feedback import decisive, load_preferences
from clinical_rlhf.models.fingerprint import base_model_fingerprint
from clinical_rlhf.rl import losses
from clinical_rlhf.rl.checkpoint import (
    CheckpointInfo,
    CheckpointManager,
    CheckpointPayload,
    capture_rng_state,
    restore_rng_state,
)
from clinical_rlhf.rl.evaluation import evaluate_policy, stored_evaluation
from clinical_rlhf.rl.memory import MicroBatchSize, back_off_on_oom
from clinical_rlhf.rl.preference_batches import (
    EncodedPair,
    collate_pairs,
    encode_records,
    pair_logprobs,
    reference_logprobs,
)
from clinical_rlhf.rl.resume_bookkeeping import apply_schedule, mark_resumed, saved_setting, schedule_change
from clinical_rlhf.rl.run import TrainingRun, TrainResult  # noqa: F401 - TrainResult: part of this module's API
from clinical_rlhf.rl.signals import StopSignals
from clinical_rlhf.rl.trainer import EVAL_SEED_OFFSET

log = logging.getLogger(__name__)

ALGORITHM = "dpo"
SHIPPED_PREFERENCES = ("train.jsonl", "heldout.jsonl")
"""Files of the shipped preference set in `clinical_rlhf/data/preferences/`."""


def load_preference_splits(cfg: Config) -> tuple[list, list]:
    """(train records, held-out records): `training.dpo.train_file` / `heldout_file`, else the
    shipped set. Ties are kept here; the trainer skips and counts them."""
    dpo = cfg.training.dpo
    shipped = resources.files("clinical_rlhf") / "data" / "preferences"
    splits = []
    for configured, name, key in ((dpo.train_file, SHIPPED_PREFERENCES[0], "train_file"),
                                  (dpo.heldout_file, SHIPPED_PREFERENCES[1], "heldout_file")):
        path = Path(configured) if configured is not None else Path(str(shipped / name))
        if configured is None and not path.is_file():
            raise InputDataError(f"{path}: the shipped preference set is missing; set training.dpo.{key} "
                                 f"to a preference JSONL file (docs/feedback.md)")
        splits.append(load_preferences(path))
    return splits[0], splits[1]


def preference_fingerprint(records: Sequence) -> str:
    """SHA-256 of the training pairs' ids and winners, in order: a resume must see the same data
    for its step counter to point at the same batches."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record.id}\0{record.preferred}\n".encode())
    return digest.hexdigest()


class DPOTrainer(TrainingRun):
    """DPO on `bundle` from preference records. The reference is `bundle.reference()`: the adapter
    disabled with LoRA, the factory's frozen copy of the base without it (twice the memory).

    `train_pairs` / `eval_pairs`: `PreferenceRecord`s (ties are skipped and counted).
    `guard`, `reward_fn`, `eval_prompts`: the held-out before/after evaluation of sampled answers,
    as PPO's (left out when any is missing). `tracker`, `audit`, `callbacks`: as `PPOTrainer`'s;
    callbacks receive `(step, metrics)` after every optimizer step.
    """

    algorithm, unit = ALGORITHM, "step"

    def __init__(self, cfg: Config, bundle, tracker, *, train_pairs: Sequence, eval_pairs: Sequence = (),
                 audit=None, guard=None, reward_fn=None, eval_prompts: Sequence[str] = (),
                 callbacks: Sequence[Callable] = ()) -> None:
        self.cfg, self.bundle, self.tracker, self.audit = cfg, bundle, tracker, audit
        self.guard, self.reward_fn, self.eval_prompts = guard, reward_fn, list(eval_prompts)
        self.dpo, self.callbacks = cfg.training.dpo, list(callbacks)
        self.run_dir, self.run_id = cfg.run_dir, cfg.training.run_name
        train, heldout = decisive(train_pairs), decisive(eval_pairs)
        self.ties_skipped = {"train": len(train_pairs) - len(train), "heldout": len(eval_pairs) - len(heldout)}
        if not train:
            raise InputDataError(f"no preference pair with a winner to train on ({len(train_pairs)} records, "
                                 f"all ties or none); check training.dpo.train_file")
        self.data_fingerprint = preference_fingerprint(train)
        context = min(getattr(bundle.entry, "context_length", 10**9), bundle.tokenizer.model_max_length,
                      self.dpo.max_length)
        self.train_set = encode_records(bundle, train, context)
        self.eval_set = encode_records(bundle, heldout, context)
        self.reduction = "mean" if self.dpo.loss_type == "ipo" else "sum"
        self.steps_per_epoch = math.ceil(len(self.train_set) / self.dpo.batch_size)
        self.total_steps = self.dpo.epochs * self.steps_per_epoch
        self.parameters = bundle.trainable_parameters()
        self.optimizer = torch.optim.AdamW(self.parameters, lr=self.dpo.learning_rate, weight_decay=0.0)
        linear, total = self.dpo.lr_schedule == "linear", self.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda done: max(0.0, 1.0 - done / total) if linear else 1.0)
        self.micro_batch = MicroBatchSize(self.dpo.micro_batch_size, on_change=log.warning)
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", cfg.training.checkpoint.keep_last)
        self.base_fingerprint = base_model_fingerprint(bundle.model)
        self.signals = StopSignals()
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.saved_step: int | None = None
        self.last_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.train_reference = self.eval_reference = None

    # ------------------------------------------------------------------ the loop

    @property
    def progress(self) -> int:
        return self.step

    @property
    def total(self) -> int:
        return self.total_steps

    def _advance(self) -> bool:
        self._step(self.step + 1)
        return True

    def _prepare(self, resumed: bool) -> None:
        self._reference_pass()

    def _run_details(self) -> dict:
        return {"algorithm": ALGORITHM, "train_pairs": len(self.train_set), "heldout_pairs": len(self.eval_set),
                "ties_skipped": self.ties_skipped, "preferences_sha256": self.data_fingerprint}

    def _started(self, before: dict | None, resumed: bool) -> None:
        self._log_data(before, resumed)

    def _save_final(self) -> None:
        if self.saved_step != self.step:
            self._save("regular")

    def _completed_message(self) -> str:
        return f"DPO completed after {self.step} steps ({self.dpo.epochs} epoch(s) of {len(self.train_set)} pairs)"

    def _step(self, step: int) -> dict[str, float]:
        started = time.perf_counter()
        indices = self._batch_indices(step)
        self.optimizer.zero_grad(set_to_none=True)
        stats = back_off_on_oom(self.micro_batch, "out of memory in the DPO step",
                                lambda: self._accumulate(indices), discard=self.optimizer.zero_grad)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.dpo.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        metrics = {f"dpo/{key}": value for key, value in stats.items()}
        metrics["dpo/grad_norm"] = float(grad_norm)
        metrics["dpo/lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["dpo/epoch"] = step / self.steps_per_epoch
        self.scheduler.step()
        self.step = step
        metrics["system/micro_batch_size"] = float(self.micro_batch.value)
        metrics["time/step"] = time.perf_counter() - started
        metrics["time/pairs_per_second"] = len(indices) / metrics["time/step"]
        if self.dpo.eval_frequency and self.eval_set and step % self.dpo.eval_frequency == 0:
            started = time.perf_counter()
            metrics |= {f"dpo/eval/{key}": value for key, value in self._preference_eval().items()}
            metrics["time/eval"] = time.perf_counter() - started
        self.last_metrics = metrics
        self.history.append(metrics)
        self.tracker.log_metrics(step, metrics)
        for callback in self.callbacks:
            callback(step, metrics)
        if step % self.cfg.training.checkpoint.save_frequency == 0:
            self._save("regular")
        return metrics

    def _batch_indices(self, step: int) -> list[int]:
        """Pairs of optimizer step `step` (1-based): each epoch is its own permutation, drawn from a
        generator seeded by (seed, epoch), so the step counter alone fixes the batch (resume needs
        nothing else) and the global RNG is left alone."""
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        generator = torch.Generator().manual_seed(self.cfg.training.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.train_set), generator=generator).tolist()
        size = self.dpo.batch_size
        return order[position * size:(position + 1) * size]

    def _accumulate(self, indices: list[int]) -> dict[str, float]:
        """Backward over micro-batches of the step's pairs; stats are pair-weighted means."""
        totals: dict[str, float] = defaultdict(float)
        micro = self.micro_batch.value
        for start in range(0, len(indices), micro):
            part = indices[start:start + micro]
            weight = len(part) / len(indices)
            loss, stats = self._loss([self.train_set[i] for i in part], self.train_reference[part])
            (loss * weight).backward()
            totals["loss"] += float(loss.detach()) * weight
            for key, value in stats.items():
                totals[key] += float(value) * weight
        return dict(totals)

    def _loss(self, pairs: Sequence[EncodedPair], reference: torch.Tensor):
        batch = collate_pairs(pairs, self.bundle.tokenizer.pad_token_id, self.bundle.device)
        chosen, rejected = pair_logprobs(self.bundle, batch, self.reduction)
        reference = reference.to(chosen.device)
        return losses.dpo_loss(chosen, rejected, reference[:, 0], reference[:, 1], self.dpo.beta,
                               self.dpo.loss_type, self.dpo.label_smoothing)

    # ------------------------------------------------------------------ evaluation

    def _reference_pass(self) -> None:
        started = time.perf_counter()
        size = self.micro_batch.value
        self.train_reference = reference_logprobs(self.bundle, self.train_set, size, self.reduction)
        self.eval_reference = reference_logprobs(self.bundle, self.eval_set, size, self.reduction)
        log.info("reference log-probs of %d pairs in %.1f s", len(self.train_set) + len(self.eval_set),
                 time.perf_counter() - started)

    @torch.no_grad()
    def _preference_eval(self) -> dict[str, float]:
        """Held-out pairs under the current policy: loss, accuracy, margin, rewards (no grad)."""
        chosen, rejected = [], []
        size = self.micro_batch.value
        for start in range(0, len(self.eval_set), size):
            batch = collate_pairs(self.eval_set[start:start + size], self.bundle.tokenizer.pad_token_id,
                                  self.bundle.device)
            part_chosen, part_rejected = pair_logprobs(self.bundle, batch, self.reduction)
            chosen.append(part_chosen.cpu())
            rejected.append(part_rejected.cpu())
        loss, stats = losses.dpo_loss(torch.cat(chosen), torch.cat(rejected), self.eval_reference[:, 0],
                                      self.eval_reference[:, 1], self.dpo.beta, self.dpo.loss_type,
                                      self.dpo.label_smoothing)
        return {"loss": float(loss), **{key: float(value) for key, value in stats.items()}}

    def _evaluation(self, which: str, reuse: bool = False) -> dict | None:
        """`evaluation.json`'s `before`/`after`: PPO's sampled-answer evaluation (guard + reward, with
        `training.ppo`'s sampling settings, so PPO and DPO runs are compared on the same footing)
        when prompts, guard and reward are given, plus `preference_*` on the held-out pairs."""
        sampled = bool(self.eval_prompts) and self.guard is not None and self.reward_fn is not None
        if not sampled and not self.eval_set:
            return None

        def evaluate() -> dict:
            result: dict = {}
            if sampled:
                ppo = self.cfg.training.ppo
                temperature = float(ppo.temperature or getattr(self.bundle, "temperature", None) or 1.0)
                context = min(getattr(self.bundle.entry, "context_length", 10**9),
                              self.bundle.tokenizer.model_max_length)
                result |= evaluate_policy(
                    self.bundle, self.guard, self.reward_fn, self.eval_prompts,
                    seed=self.cfg.training.seed + EVAL_SEED_OFFSET, temperature=temperature,
                    max_new_tokens=ppo.max_new_tokens, top_p=ppo.top_p,
                    max_prompt_tokens=max(8, context - ppo.max_new_tokens),
                    micro_batch_size=2 * self.micro_batch.value,
                    escalate_is_unsafe=self.cfg.safety.escalate_is_unsafe, kl_estimator=ppo.kl_estimator)
            if self.eval_set:
                stats = self._preference_eval()
                result |= {"preference_pairs": len(self.eval_set), "preference_accuracy": stats["rewards/accuracy"],
                           "preference_margin": stats["rewards/margin"], "preference_loss": stats["loss"]}
            return result

        return stored_evaluation(self.run_dir / "evaluation.json", which, reuse, evaluate)

    def _log_data(self, before: dict | None, resumed: bool) -> None:
        """Step 0 of a new run: the data counts and the held-out preference figures before training."""
        if resumed:
            return
        metrics = {"dpo/data/train_pairs": float(len(self.train_set)),
                   "dpo/data/heldout_pairs": float(len(self.eval_set)),
                   "dpo/data/ties_skipped": float(sum(self.ties_skipped.values())),
                   "dpo/data/truncated_pairs": float(sum(p.truncated for p in (*self.train_set, *self.eval_set)))}
        if before and "preference_accuracy" in before:
            metrics |= {"dpo/eval/rewards/accuracy": before["preference_accuracy"],
                        "dpo/eval/rewards/margin": before["preference_margin"], "dpo/eval/loss": before["preference_loss"]}
        self.tracker.log_metrics(0, metrics)

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict:
        return {"algorithm": ALGORITHM, "iteration": self.step, "steps_per_epoch": self.steps_per_epoch,
                "micro_batch_size": self.micro_batch.value, "scheduler": self.scheduler.state_dict(),
                "base_fingerprint": self.base_fingerprint, "preferences_sha256": self.data_fingerprint,
                "rng": capture_rng_state()}

    def _save(self, kind: str):
        payload = CheckpointPayload(self.bundle.trainable_state_dict(), self.optimizer.state_dict(), self._state(),
                                    self.cfg.to_yaml())
        summary = {key.replace("/", "_"): self.last_metrics[key] for key in ("dpo/loss", "dpo/rewards/accuracy")
                   if key in self.last_metrics}
        started = time.perf_counter()
        anchor = self.audit.anchor().to_dict() if self.audit is not None else None
        info = self.checkpoints.save(self.step, kind, payload, summary, audit_anchor=anchor)
        self.tracker.log_checkpoint(self.step, info.path, kind, time.perf_counter() - started)
        self.checkpoints.prune()
        self.last_checkpoint, self.saved_step = info.path, self.step
        self._audit("checkpoint", details={"iteration": self.step, "kind": kind, "path": str(info.path)})
        return info

    def _restore(self, info: CheckpointInfo, payload: CheckpointPayload) -> None:
        state = payload.state
        if state["preferences_sha256"] != self.data_fingerprint:
            raise CheckpointError(f"checkpoint {info.path} was trained on other preference pairs than "
                                  f"{self.dpo.train_file or 'the shipped set'} holds now; resume with the same file, "
                                  f"or start a new run with --set training.run_name=<new name>")
        if int(state["steps_per_epoch"]) != self.steps_per_epoch:
            raise CheckpointError(f"checkpoint {info.path} was trained with {state['steps_per_epoch']} steps per epoch, "
                                  f"this config makes {self.steps_per_epoch} (training.dpo.batch_size changed); resume "
                                  f"with the batch size it was trained with")
        self.bundle.load_trainable_state_dict(payload.trainable)
        self.optimizer.load_state_dict(payload.optimizer)
        self.scheduler.load_state_dict(state["scheduler"])
        self.micro_batch.value = int(state["micro_batch_size"])
        self.step = int(state["iteration"])
        restore_rng_state(state["rng"])
        log.info("resumed from %s (step %d of %d)", info.path, self.step, self.total_steps)
        apply_schedule(self.scheduler, self.optimizer)  # this run's total, not the saved rate
        epochs = saved_setting(payload.config_yaml, "training", "dpo", "epochs")
        saved_total = epochs * self.steps_per_epoch if isinstance(epochs, int) else None
        if note := schedule_change(saved_total, self.total_steps, self.step, self.dpo.learning_rate,
                                   self.dpo.lr_schedule == "linear", "steps"):
            log.warning(note)
        mark_resumed(self.run_dir, self.step, info.name, self.tracker, self._audit)
