"""The constrained PPO loop: orchestration of injected parts, no maths of its own.

One iteration (`_iteration`): sample answers -> guard + reward -> safety decisions (emergency
stop, alert rules, rollback: visible lines with thresholds from config) -> advantages -> PPO
update -> KL and Lagrange controllers -> one metrics dict -> checkpoint. The policy bundle, the
guard, the reward, the tracker, the audit log and the monitors are passed in, so a test can
replace any of them with a fake.

Under `accelerate launch` every process runs this loop on its shard of each batch
(`rl/distributed.py`): per-answer results are gathered, so the metrics, the safety decisions
and the early stops are those of the whole batch and identical on every rank; only rank 0
tracks, audits, writes checkpoints and runs callbacks (the others get no-op equivalents).
Under FSDP (`rl/sharding.py`) the bundle is sharded here, before the optimizer is built; under
DeepSpeed ZeRO (`rl/zero.py`) an engine takes the optimizer and owns the update's step. Both
gather checkpoints on every rank; FSDP and ZeRO-3 also evaluate on every rank.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from clinical_rlhf.config import Config
from clinical_rlhf.errors import EmergencyStop
from clinical_rlhf.models.fingerprint import base_model_fingerprint
from clinical_rlhf.monitoring import alerts
from clinical_rlhf.rl.checkpoint import (CheckpointInfo, CheckpointManager, CheckpointPayload, capture_rng_state,
                                         restore_rank_rng_state, restore_rng_state)
from clinical_rlhf.rl.controllers import (RunningMoments, UnsafeWindow, build_kl_controller,
                                          build_lagrange_multiplier)
from clinical_rlhf.rl.distributed import Distributed, NullTracker, derived_seed, rank_seed
from clinical_rlhf.rl.evaluation import Judgement, evaluate_policy, judge, sample_answers, stored_evaluation
from clinical_rlhf.rl.experience import make_experience
from clinical_rlhf.rl.memory import MicroBatchSize, back_off_on_oom
from clinical_rlhf.rl.prompts import PromptSampler
from clinical_rlhf.rl.resume_bookkeeping import apply_schedule, mark_resumed, saved_setting, schedule_change
from clinical_rlhf.rl.rollout import score
from clinical_rlhf.rl.run import TrainingRun, TrainResult  # noqa: F401 - TrainResult: part of this module's API
from clinical_rlhf.rl.sharding import full_optimizer_state_dict, shard_bundle, shard_optimizer_state
from clinical_rlhf.rl.signals import StopSignals
from clinical_rlhf.rl.update import ppo_update
from clinical_rlhf.rl.zero import ZeroEngine, zero_options
from clinical_rlhf.seeding import seed_everything

log = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 10_007
"""Added to `training.seed` for the evaluation's private RNG stream (any fixed offset works)."""

MINIBATCH_STREAM = 1
"""Stream key of `derived_seed` for the mini-batch order of each iteration's update."""


class PPOTrainer(TrainingRun):
    """Constrained PPO on `bundle` with `guard` vetoes and `reward_fn` scores.

    `tracker`: `log_params`, `log_metrics(step, metrics)`, `log_event(step, kind, severity, message, **details)`,
    `log_checkpoint(step, path, kind, seconds)`.
    `audit`: an open `AuditLog` (or None when auditing is off). `alert_rules` (default: the
    config's `monitoring.alerts`) are evaluated by `evaluate_rules` (default: the monitoring
    package's). `drift`: `update(step, rewards, safety_scores) -> metrics`; `memory`: `update()`
    and `state`. `callbacks` receive `(iteration, metrics)` after every iteration (progress bar,
    Prometheus exporter).
    `distributed`: this process's place in a multi-process run (default: the initialised
    process group, else one process). On ranks other than 0 the tracker, the audit log and the
    callbacks are replaced by no-ops.
    """

    algorithm, unit = "ppo", "iteration"

    def __init__(self, cfg: Config, bundle, guard, reward_fn, tracker, *, train_prompts: Sequence[str],
                 eval_prompts: Sequence[str] = (), audit=None, drift=None, memory=None,
                 alert_rules: Sequence | None = None, evaluate_rules: Callable | None = None,
                 callbacks: Sequence[Callable] = (), distributed: Distributed | None = None) -> None:
        self.dist = distributed or Distributed.current()
        self.dist.check_supported(cfg)
        # Fingerprint and identical trainable weights on full tensors, before any sharding.
        self.base_fingerprint = base_model_fingerprint(bundle.model)
        if self.dist.is_distributed:
            self.dist.broadcast_parameters(bundle.trainable_parameters())
        if self.dist.shards_parameters and self.dist.strategy == "fsdp":
            sharded = shard_bundle(bundle, self.dist)
            if self.dist.is_main:
                log.info(sharded)
        if not self.dist.is_main:
            tracker, audit, callbacks = NullTracker(), None, ()
        self.cfg, self.bundle, self.guard, self.reward_fn, self.tracker = cfg, bundle, guard, reward_fn, tracker
        self.train_cfg, self.ppo = cfg.training, cfg.training.ppo
        self.prompt_shard = self.dist.shard(self.ppo.batch_size)
        samples = self.ppo.samples_per_prompt
        self.answer_shard = range(self.prompt_shard.start * samples, self.prompt_shard.stop * samples)
        self.audit, self.drift, self.memory = audit, drift, memory
        self.alert_rules = alerts.parse_rules(cfg.monitoring.alerts if alert_rules is None else alert_rules)
        self.evaluate_rules = evaluate_rules or alerts.evaluate_rules
        self.rule_context = alerts.rule_context(cfg)
        self.callbacks = list(callbacks)
        self.evaluation_callbacks: list[Callable[[str, int, int], None]] = []
        """`(which, done, total)` as the held-out evaluation ("before"/"after") answers its prompts."""
        self.eval_prompts = list(eval_prompts)
        self.run_dir = cfg.run_dir
        self.run_id = cfg.training.run_name
        self.temperature = float(self.ppo.temperature or getattr(bundle, "temperature", None) or 1.0)
        context = min(getattr(bundle.entry, "context_length", 10**9), bundle.tokenizer.model_max_length)
        self.max_prompt_tokens = max(8, context - self.ppo.max_new_tokens)
        self.sampler = PromptSampler(train_prompts, cfg.training.seed)
        self.micro_batch = MicroBatchSize(self.ppo.micro_batch_size, on_change=self._rank_warn)
        # foreach: one kernel per operation over all the (many, small) adapter tensors instead of
        # one per tensor, as torch already does on CUDA; the same updates bit for bit on the CPU
        self.optimizer = torch.optim.AdamW(bundle.trainable_parameters(), lr=self.ppo.learning_rate, weight_decay=0.0,
                                           foreach=True)
        self.zero = None
        if self.dist.strategy == "deepspeed":
            options = zero_options(max_grad_norm=self.ppo.max_grad_norm)
            self.zero = ZeroEngine(bundle, self.optimizer, self.dist, options,
                                   max_grad_norm=self.ppo.max_grad_norm)
            self._say(f"DeepSpeed ZeRO-{options.stage} over {self.dist.world_size} process"
                      f"{'es' if self.dist.is_distributed else ''} (optimizer offload: "
                      f"{options.offload_optimizer}, parameter offload: {options.offload_params})")
        total = cfg.training.num_iterations
        linear = self.ppo.lr_schedule == "linear"
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda done: max(0.0, 1.0 - done / total) if linear else 1.0)
        self.kl_controller = build_kl_controller(self.ppo)
        lagrangian = cfg.training.lagrangian
        self.lagrange = build_lagrange_multiplier(lagrangian) if lagrangian.enabled else None
        self.reward_moments = RunningMoments()
        self.unsafe_window = UnsafeWindow(cfg.training.rollback.window)
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", cfg.training.checkpoint.keep_last)
        self.drift_inputs: list[tuple[int, list[float], list[float]]] = []
        self.last_reward = 0.0
        self.history: list[dict[str, float]] = []
        self.iteration = 0
        self.last_checkpoint: Path | None = None
        self.signals = StopSignals()
        if self.dist.is_distributed:
            # The replicas were made identical above (whatever each rank's RNG did while
            # building the model); now each rank samples from its own stream.
            seed_everything(rank_seed(cfg.training.seed, self.dist.rank), cfg.training.deterministic)

    # ------------------------------------------------------------------ the loop

    @property
    def progress(self) -> int:
        return self.iteration

    @property
    def total(self) -> int:
        return self.train_cfg.num_iterations

    def _advance(self) -> bool:
        rng_at_start, sampler_at_start = capture_rng_state(), self.sampler.state_dict()
        if self._iteration(self.iteration + 1) is None:
            # Stop signal while sampling: abandon the rollout; the checkpoint holds the state
            # from before it, so a resumed run repeats this iteration exactly.
            restore_rng_state(rng_at_start)
            self.sampler.load_state_dict(sampler_at_start)
            return False
        return True

    def _iteration(self, iteration: int) -> dict[str, float] | None:
        started = time.perf_counter()
        rollout = self._collect()
        if rollout is None:
            return None
        rollout_seconds = time.perf_counter() - started
        local = judge(self.guard, self.reward_fn, rollout.prompts, rollout.responses,
                      self.cfg.safety.escalate_is_unsafe)
        judgement, batch = self._whole_batch(rollout, local)
        self._audit_guard_checks(iteration, batch["prompts"], batch["responses"], judgement)
        metrics = judgement.metrics() | self._drift(iteration, judgement)
        self.last_reward = metrics["reward/total/mean"]
        ended = batch["ended_with_eos"]
        metrics["rollout/missing_eos_ratio"] = 1.0 - sum(ended) / len(ended)
        metrics["rollout/response_length"] = sum(batch["lengths"]) / len(batch["lengths"])
        mine = slice(self.answer_shard.start, self.answer_shard.stop)
        device = rollout.response_mask.device
        scores = self._scores(torch.tensor(ended), judgement)[mine].to(device)
        costs = torch.tensor(judgement.costs)[mine].to(device)
        multiplier = self.lagrange.value if self.lagrange is not None else None
        experience, objective = make_experience(rollout, scores, costs, kl_coef=self.kl_controller.value,
                                                multiplier=multiplier, ppo=self.ppo, distributed=self.dist)
        metrics |= objective
        self.iteration = iteration

        # --- safety decisions (thresholds from config; each one audited) ---------------------
        unsafe_ratio = metrics["safety/unsafe_ratio"]
        if unsafe_ratio > self.cfg.safety.max_unsafe_ratio:
            self._emergency_stop(metrics, f"unsafe ratio {unsafe_ratio:.2f} exceeded "
                                          f"safety.max_unsafe_ratio {self.cfg.safety.max_unsafe_ratio:.2f}")
        actions = self._alerts(iteration, metrics)
        if "emergency_stop" in actions:
            self._emergency_stop(metrics, f"an alert rule with action emergency_stop fired "
                                          f"(unsafe ratio {unsafe_ratio:.2f})")
        self.unsafe_window.update(unsafe_ratio)
        # rank 0's reading of the checkpoint directory, so that every rank takes the same branch
        best = self.dist.broadcast(self.checkpoints.best() if self.dist.is_main else None)
        best_unsafe = best.metrics["unsafe_ratio"] if best is not None else None
        rollback = self.train_cfg.rollback
        # (a rollback needs a checkpoint to restore: none exists before the first save)
        if rollback.enabled and best is not None and (
                self.unsafe_window.degraded(best_unsafe, rollback.margin) or "rollback" in actions):
            self._rollback(iteration, metrics, best_unsafe)
            return self._finish(iteration, metrics, started)
        if self.memory is not None:
            metrics |= self._memory_check()

        # --- the PPO update, its epoch early stop, the controllers --------------------------------
        update_started = time.perf_counter()
        order = torch.Generator().manual_seed(derived_seed(self.train_cfg.seed, MINIBATCH_STREAM, iteration))
        metrics |= ppo_update(self.bundle, self.zero or self.optimizer, experience, ppo=self.ppo,
                              temperature=self.temperature, micro_batch=self.micro_batch,
                              stop_epoch=self._stop_epoch, distributed=self.dist, generator=order)
        metrics["policy/lr"] = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.kl_controller.update(objective["objective/kl"], n_steps=self._rollout_size())
        if self.lagrange is not None:
            metrics["lagrange/cost"] = sum(judgement.costs) / len(judgement.costs)
            self.lagrange.update(metrics["lagrange/cost"])
        metrics["time/rollout"] = rollout_seconds
        metrics["time/update"] = time.perf_counter() - update_started
        return self._finish(iteration, metrics, started)

    def _stop_epoch(self, stats: dict[str, float]) -> bool:
        """The alert rules on the update's statistics (`kl` is its approximate KL to the rollout
        policy): True when one whose action is early_stop_epoch fired. The `target_kl` stop
        itself is a line of `ppo_update`'s loop."""
        return "early_stop_epoch" in self._alerts(self.iteration, {"policy/approx_kl": stats["policy/approx_kl"]})

    def _finish(self, iteration: int, metrics: dict[str, float], started: float) -> dict[str, float]:
        """Controllers' values, timing, logging, callbacks and the periodic checkpoint."""
        # Ranks may have halved their micro-batch on their own (OOM, memory pressure): continue
        # with the smallest, so the checkpoint's value holds for every rank.
        self.micro_batch.value = self.dist.min_int(self.micro_batch.value)
        metrics["system/world_size"] = float(self.dist.world_size)
        metrics["objective/kl_coef_next"] = self.kl_controller.value
        if self.lagrange is not None:
            metrics["lagrange/multiplier"] = self.lagrange.value
        metrics["system/micro_batch_size"] = float(self.micro_batch.value)
        metrics["time/iteration"] = time.perf_counter() - started
        metrics["time/samples_per_second"] = self._rollout_size() / metrics["time/iteration"]
        self.history.append(metrics)
        self.tracker.log_metrics(iteration, metrics)
        for callback in self.callbacks:
            callback(iteration, metrics)
        if iteration % self.train_cfg.checkpoint.save_frequency == 0:
            self._save("regular")
        return metrics

    # ------------------------------------------------------------------ steps

    def _rollout_size(self) -> int:
        return self.ppo.batch_size * self.ppo.samples_per_prompt

    def _collect(self):
        """Sample and score this rank's shard of one rollout; halve the micro-batch and retry on
        out-of-memory. None on every rank when a stop signal reached any rank while sampling."""
        shard = self.sampler.next_shard(self.ppo.batch_size, self.prompt_shard)
        prompts = [p for p in shard for _ in range(self.ppo.samples_per_prompt)]
        rollout = self._retry_on_oom("out of memory during the rollout", lambda: sample_answers(
            self.bundle, prompts, micro_batch_size=self.micro_batch.value, should_stop=lambda: self.signals.requested,
            temperature=self.temperature, max_new_tokens=self.ppo.max_new_tokens, top_p=self.ppo.top_p,
            max_prompt_tokens=self.max_prompt_tokens))
        if self.dist.any(rollout is None):
            self._stop_requested()  # every rank learns which signal it was
            return None
        return self._retry_on_oom("out of memory while scoring the rollout",
                                  lambda: score(self.bundle, rollout, self.temperature, self.micro_batch.value))

    def _retry_on_oom(self, reason: str, step: Callable):
        """`step()`, halving the micro-batch and retrying after each out-of-memory error (local to
        this rank: no collective runs inside `step`; under FSDP and ZeRO-3 the others are
        mid-collective, so it is raised)."""
        return back_off_on_oom(self.micro_batch, reason, step, retry=not self.dist.shards_parameters)

    def _whole_batch(self, rollout, local: Judgement) -> tuple[Judgement, dict[str, list]]:
        """The judgement and per-answer facts of the whole batch, in global order, on every rank
        (one gather): metrics and safety decisions are then those of a single process."""
        mine = {"verdicts": local.verdicts, "breakdowns": local.breakdowns, "unsafe": local.unsafe,
                "prompts": rollout.prompts, "responses": rollout.responses,
                "ended_with_eos": rollout.ended_with_eos.tolist(), "lengths": rollout.response_mask.sum(1).tolist()}
        parts = self.dist.gather(mine)
        batch = {key: [item for part in parts for item in part[key]] for key in mine}
        return Judgement(batch["verdicts"], batch["breakdowns"], batch["unsafe"]), batch

    def _stop_requested(self) -> bool:
        """Whether a stop signal reached any rank; if so every rank records its name."""
        names = self.dist.gather(self.signals.name if self.signals.requested else None)
        name = next((name for name in names if name), None)
        if name is not None and not self.signals.requested:
            self.signals.request(name)
        return name is not None

    def _scores(self, ended_with_eos: torch.Tensor, judgement) -> torch.Tensor:
        """Scalar rewards of the whole batch: the reward's totals, minus the missing-EOS penalty,
        optionally scaled."""
        scores = torch.tensor([float(b.total) for b in judgement.breakdowns])
        scores = scores - self.ppo.missing_eos_penalty * (~ended_with_eos).float()
        if self.ppo.reward_normalization:
            self.reward_moments.update(scores.tolist())
            scores = scores / max(self.reward_moments.std, 1e-6)
        return scores

    def _drift(self, iteration: int, judgement) -> dict[str, float]:
        if self.drift is None:
            return {}
        rewards = [float(b.total) for b in judgement.breakdowns]
        safety = [float(b.components.get("safety", 0.0)) for b in judgement.breakdowns]
        self.drift_inputs.append((iteration, rewards, safety))
        return dict(self.drift.update(iteration, rewards, safety))

    def _alerts(self, iteration: int, metrics: dict[str, float]) -> set[str]:
        """Evaluate the alert rules (`evaluate_rules` audits each firing); the actions that fired."""
        if self.evaluate_rules is None or not self.alert_rules:
            return set()
        fired = self.evaluate_rules(self.alert_rules, metrics, context=self.rule_context,
                                    audit=self.audit, actor=self.run_id, step=iteration)
        self.tracker.log_alerts(iteration, fired)
        return {alert.action for alert in fired}

    def _memory_check(self) -> dict[str, float]:
        """Read the memory monitor; under pressure it proposes a smaller micro-batch (halving
        once per warning episode, every reading while critical), taken before the update.
        Each rank watches its own memory; the metrics logged are rank 0's."""
        self.memory.update()
        proposed = self.memory.micro_batch_size(self.micro_batch.value)
        if self.dist.partitions_state:  # FSDP, ZeRO: every rank must run the same number of passes
            proposed = self.dist.min_int(proposed)
        if proposed < self.micro_batch.value:
            self.micro_batch.value = proposed
            self._rank_warn(f"memory monitor reports {self.memory.state}: micro-batch halved to {proposed}")
        return dict(self.memory.metrics())

    def _evaluation(self, which: str, reuse: bool = False) -> dict | None:
        """Evaluate on held-out prompts into `evaluation.json`. A resumed run (`reuse`) keeps the
        stored `before`: it describes the policy the run started from, not the resumed checkpoint.
        Rank 0 evaluates (the replicas are identical) and shares the result; under FSDP every rank
        runs the same evaluation (each forward pass needs all shards) and rank 0 stores it."""
        if not self.eval_prompts:
            return None
        path = self.run_dir / "evaluation.json"

        def evaluate() -> dict:
            return evaluate_policy(
                self.bundle, self.guard, self.reward_fn, self.eval_prompts, seed=self.train_cfg.seed + EVAL_SEED_OFFSET,
                temperature=self.temperature, max_new_tokens=self.ppo.max_new_tokens, top_p=self.ppo.top_p,
                max_prompt_tokens=self.max_prompt_tokens, micro_batch_size=self.micro_batch.value,
                escalate_is_unsafe=self.cfg.safety.escalate_is_unsafe, kl_estimator=self.ppo.kl_estimator,
                on_progress=lambda done, total: [callback(which, done, total) for callback in self.evaluation_callbacks])

        if self.dist.shards_parameters:
            stored = self.dist.broadcast(reuse and self.dist.is_main and path.is_file()
                                         and which in json.loads(path.read_text()))
            computed = None if stored else evaluate()
            evaluate = lambda: computed  # rank 0 stores what every rank computed
        result = stored_evaluation(path, which, reuse, evaluate) if self.dist.is_main else None
        return self.dist.broadcast(result)

    # ------------------------------------------------------------------ safety actions

    def _emergency_stop(self, metrics: dict[str, float], reason: str) -> None:
        info = self._save("emergency_stop", metrics)
        message = (f"emergency stop at iteration {self.iteration}: {reason}; checkpoint {info.path}, "
                   f"audit log {self.run_dir / 'audit.jsonl'}")
        self._audit("emergency_stop", details={"iteration": self.iteration, "reason": reason,
                                               "unsafe_ratio": metrics["safety/unsafe_ratio"],
                                               "checkpoint": str(info.path)})
        self.tracker.log_metrics(self.iteration, metrics)
        self.tracker.log_event(self.iteration, "emergency_stop", "critical", message)
        raise EmergencyStop(message)

    def _rollback(self, iteration: int, metrics: dict[str, float], best_unsafe: float | None) -> None:
        """Restore the best checkpoint's weights and optimizer moments; lower the current learning
        rate and raise the current beta (so repeated rollbacks compound); keep the iteration
        counter, the RNG, the Lagrange multiplier and the prompt order moving forward."""
        info, payload = self.checkpoints.best_loadable()
        factor = self.train_cfg.rollback
        base_lrs = [lr * factor.lr_factor for lr in self.scheduler.base_lrs]
        self._load_weights_and_moments(payload)
        self.scheduler.base_lrs = base_lrs
        for group, base in zip(self.optimizer.param_groups, base_lrs):
            group["lr"] = base * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        self.kl_controller.scale(factor.kl_coef_factor)
        window = self.unsafe_window.value
        self.unsafe_window.reset()
        message = (f"rollback at iteration {iteration}: unsafe ratio over the last {factor.window} iterations "
                   f"{window:.2f} > best {best_unsafe if best_unsafe is not None else float('nan'):.2f} + margin "
                   f"{factor.margin:.2f}; restored {info.name}, learning rate x{factor.lr_factor}, beta x{factor.kl_coef_factor}")
        self._warn(message)
        metrics["rollback/restored_iteration"] = float(info.iteration)
        self._audit("rollback", details={"iteration": iteration, "restored": info.name, "window_unsafe_ratio": window,
                                         "best_unsafe_ratio": best_unsafe, "lr": self.optimizer.param_groups[0]["lr"],
                                         "kl_coef": self.kl_controller.value})
        self.tracker.log_event(iteration, "rollback", "warning", message)

    # ------------------------------------------------------------------ checkpoints

    def _state(self, rng_per_rank: list[dict]) -> dict:
        return {
            "algorithm": "ppo", "iteration": self.iteration, "micro_batch_size": self.micro_batch.value,
            "scheduler": self.scheduler.state_dict(), "kl_controller": self.kl_controller.state_dict(),
            "lagrange": self.lagrange.state_dict() if self.lagrange is not None else {},
            "reward_moments": self.reward_moments.state_dict(), "sampler": self.sampler.state_dict(),
            "unsafe_window": self.unsafe_window.state_dict(), "drift_inputs": self.drift_inputs,
            "last_reward": self.last_reward, "base_fingerprint": self.base_fingerprint,
            "rng": rng_per_rank[0], "rng_per_rank": rng_per_rank, "world_size": self.dist.world_size,
        }

    def _save(self, kind: str, metrics: dict[str, float] | None = None):
        """Rank 0 writes the checkpoint (with every rank's RNG streams); the others wait for it."""
        rng_per_rank = self.dist.gather(capture_rng_state())
        partitioned = self.dist.partitions_state  # FSDP, ZeRO: no replicas to compare; every rank gathers
        if not partitioned and not self.dist.replicas_agree(self.bundle.trainable_parameters()):
            self._warn("trainable weights differ between ranks; continuing from rank 0's (this should not happen)")
            self.dist.broadcast_parameters(self.bundle.trainable_parameters())
        weights = moments = None
        if self.zero is not None:
            weights, moments = self.zero.trainable_state_dict(), self.zero.optimizer_state_dict()
        elif partitioned or self.dist.is_main:
            weights, moments = self.bundle.trainable_state_dict(), full_optimizer_state_dict(self.optimizer)
        info = None
        if self.dist.is_main:
            payload = CheckpointPayload(weights, moments, self._state(rng_per_rank), self.cfg.to_yaml())
            summary = ({"unsafe_ratio": self.unsafe_window.value, "reward": self.last_reward}
                       if self.unsafe_window.values else {})
            if metrics:
                summary["iteration_unsafe_ratio"] = metrics.get("safety/unsafe_ratio", 0.0)
            started = time.perf_counter()
            anchor = self.audit.anchor().to_dict() if self.audit is not None else None
            info = self.checkpoints.save(self.iteration, kind, payload, summary, audit_anchor=anchor)
            self.tracker.log_checkpoint(self.iteration, info.path, kind, time.perf_counter() - started)
            self.checkpoints.prune()
            self._audit("checkpoint", details={"iteration": self.iteration, "kind": kind, "path": str(info.path)})
        info = self.dist.broadcast(info)  # the others block here until rank 0 has written
        self.last_checkpoint = info.path
        return info

    def _load_weights_and_moments(self, payload: CheckpointPayload) -> None:
        """Trainable weights and Adam moments from a checkpoint (one-process format, any run's)."""
        if self.zero is not None:
            self.zero.load_trainable_state_dict(payload.trainable)
            self.zero.load_optimizer_state_dict(payload.optimizer)
            return
        self.bundle.load_trainable_state_dict(payload.trainable)
        self.optimizer.load_state_dict(payload.optimizer)
        shard_optimizer_state(self.optimizer)

    def _restore(self, info: CheckpointInfo, payload: CheckpointPayload) -> None:
        state = payload.state
        self._load_weights_and_moments(payload)
        self.scheduler.load_state_dict(state["scheduler"])
        self.kl_controller.load_state_dict(state["kl_controller"])
        if self.lagrange is not None and state["lagrange"]:
            self.lagrange.load_state_dict(state["lagrange"])
        self.reward_moments.load_state_dict(state["reward_moments"])
        self.sampler.load_state_dict(state["sampler"])
        self.unsafe_window.load_state_dict(state["unsafe_window"])
        self.micro_batch.value = int(state["micro_batch_size"])
        self.drift_inputs = [(int(step), list(r), list(s)) for step, r, s in state["drift_inputs"]]
        if self.drift is not None:  # replay: the drift monitor's state is a function of its inputs
            for step, rewards, safety in self.drift_inputs:
                self.drift.update(step, rewards, safety)
        self.iteration = int(state["iteration"])
        self.last_reward = float(state["last_reward"])
        how = restore_rank_rng_state(state, rank=self.dist.rank, world_size=self.dist.world_size,
                                     seed=self.train_cfg.seed, deterministic=self.train_cfg.deterministic)
        self._say(f"resumed from {info.path} (iteration {self.iteration}); RNG {how}")
        apply_schedule(self.scheduler, self.optimizer)  # this run's total, not the saved rate
        saved_total = saved_setting(payload.config_yaml, "training", "num_iterations")
        if note := schedule_change(saved_total, self.train_cfg.num_iterations, self.iteration,
                                   self.ppo.learning_rate, self.ppo.lr_schedule == "linear", "iterations"):
            self._warn(note)
        if self.dist.is_main:
            mark_resumed(self.run_dir, self.iteration, info.name, self.tracker, self._audit)

    # ------------------------------------------------------------------ reporting

    def _audit_guard_checks(self, iteration: int, prompts: list[str], responses: list[str], judgement) -> None:
        """One `guard_check` record per answer of the whole batch (only vetoes and escalations when
        `safety.audit.record_allowed` is off). The guard is built without the audit log so that
        these records carry the iteration."""
        if self.audit is None:
            return
        record_allowed = self.cfg.safety.audit.record_allowed
        for prompt, response, verdict, unsafe in zip(prompts, responses, judgement.verdicts, judgement.unsafe):
            if record_allowed or unsafe or verdict.action != "allow":
                self._audit("guard_check", prompt=prompt, response=response, verdict=verdict,
                            details={"iteration": iteration})

    def _say(self, message: str) -> None:
        if self.dist.is_main:
            log.info(message)

    def _warn(self, message: str) -> None:
        """A warning about the run as a whole (every rank takes the same branch): rank 0 says it."""
        if self.dist.is_main:
            log.warning(message)

    def _rank_warn(self, message: str) -> None:
        """A warning about this process (its memory, its micro-batch), from whichever rank."""
        log.warning(f"rank {self.dist.rank}: {message}" if self.dist.is_distributed else message)

