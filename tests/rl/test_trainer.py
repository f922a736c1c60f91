"""The PPO loop end to end on a tiny GPT-2, with a fake guard (rejects any answer with a `u`)
and a fake reward (share of a/e/i/o letters): learning, emergency stop, rollback, alerts,
memory pressure. Resume and signals are in test_resume.py."""

import logging

import pytest
import torch

from clinical_rlhf.errors import EmergencyStop
from clinical_rlhf.rl.trainer import PPOTrainer
from clinical_rlhf.seeding import seed_everything

from .conftest import PROMPTS, fresh_bundle, trainer_config
from .fakes import LetterGuard, RecordingAudit, RecordingTracker, VowelReward


def make_trainer(cfg, guard=None, **kwargs):
    seed_everything(cfg.training.seed)
    tracker, audit = RecordingTracker(), RecordingAudit()
    trainer = PPOTrainer(cfg, fresh_bundle(cfg), guard or LetterGuard(), VowelReward(), tracker,
                         train_prompts=PROMPTS, audit=audit, **kwargs)
    return trainer, tracker, audit


def series(tracker, key):
    return [metrics[key] for _, metrics in tracker.metrics]


@pytest.mark.slow
def test_ppo_raises_the_reward_and_lowers_vetoes_within_ten_iterations(learnable_gpt2_dir, tmp_path):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path)
    trainer, tracker, audit = make_trainer(cfg, eval_prompts=PROMPTS[:16])
    result = trainer.train()
    rewards, unsafe = series(tracker, "reward/total/mean"), series(tracker, "safety/unsafe_ratio")
    assert result.status == "completed" and result.iterations_done == 10
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.1
    assert sum(unsafe[-3:]) / 3 < sum(unsafe[:3]) / 3
    assert result.after["reward"] > result.before["reward"]
    assert series(tracker, "lagrange/multiplier")[-1] > cfg.training.lagrangian.init_multiplier
    assert {"run_start", "guard_check", "checkpoint", "run_end"} <= set(audit.events())
    assert (cfg.run_dir / "evaluation.json").is_file()
    for key in ("objective/kl", "objective/kl_coef", "policy/loss", "policy/clipfrac", "policy/entropy",
                "policy/approx_kl", "policy/grad_norm", "policy/lr", "value/loss", "lagrange/multiplier",
                "safety/unsafe_ratio", "time/iteration"):
        assert key in tracker.metrics[-1][1], key


def test_group_advantages_train_without_the_critic(learnable_gpt2_dir, tmp_path):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 2},
                         ppo={"advantage_estimator": "group", "samples_per_prompt": 4, "batch_size": 4,
                              "kl_estimator": "k3", "reward_normalization": True})
    trainer, tracker, _ = make_trainer(cfg)
    assert trainer.train().status == "completed"
    assert "value/loss" not in tracker.metrics[-1][1]
    assert tracker.metrics[-1][1]["objective/kl"] >= 0.0  # k3 is never negative


def test_the_held_out_evaluation_reports_its_progress(learnable_gpt2_dir, tmp_path):
    # the progress bar counts held-out answers before the first iteration instead of sitting at 0/N
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 1}, ppo={"micro_batch_size": 4})
    trainer, _, _ = make_trainer(cfg, eval_prompts=PROMPTS[:10])
    calls = []
    trainer.evaluation_callbacks.append(lambda which, done, total: calls.append((which, done, total)))
    assert trainer.train().status == "completed"
    assert calls == [(which, done, 10) for which in ("before", "after") for done in (4, 8, 10)]


class AlwaysReject(LetterGuard):
    def __init__(self):
        super().__init__(letter="")  # "" is in every string


def test_emergency_stop_saves_audits_and_raises(learnable_gpt2_dir, tmp_path):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, safety={"max_unsafe_ratio": 0.5})
    trainer, tracker, audit = make_trainer(cfg, guard=AlwaysReject())
    with pytest.raises(EmergencyStop, match="unsafe ratio 1.00 exceeded safety.max_unsafe_ratio 0.50") as stop:
        trainer.train()
    assert stop.value.exit_code == 10
    assert (cfg.run_dir / "checkpoints" / "emergency_stop-000001" / "manifest.json").is_file()
    assert audit.events()[-2:] == ["emergency_stop", "run_end"]
    assert tracker.events[-1][1] == "emergency_stop"


class TurnsUnsafe(LetterGuard):
    """Allows everything for `safe_calls` batches, then rejects everything."""

    def __init__(self, safe_calls):
        super().__init__()
        self.calls, self.safe_calls = 0, safe_calls

    def check_batch(self, prompts, responses):
        self.calls += 1
        self.letter = "\x00" if self.calls <= self.safe_calls else ""
        return super().check_batch(prompts, responses)


def test_rollback_restores_best_checkpoint_lowers_lr_and_raises_beta(learnable_gpt2_dir, tmp_path):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={
        "num_iterations": 5, "checkpoint": {"save_frequency": 1},
        "rollback": {"window": 2, "margin": 0.2, "lr_factor": 0.5, "kl_coef_factor": 2.0}})
    trainer, tracker, audit = make_trainer(cfg, guard=TurnsUnsafe(safe_calls=2))
    trainer.train()
    # unsafe ratios 0, 0, 1, 1, 1: at iteration 3 the window (0 + 1) / 2 = 0.5 exceeds the best
    # checkpoint's 0 + 0.2; the window restarts, fills again at 5 and rolls back again
    rollbacks = [details for event, _, details in audit.records if event == "rollback"]
    assert [r["iteration"] for r in rollbacks] == [3, 5]
    assert rollbacks[0]["restored"] in ("iter-000001", "iter-000002")
    assert rollbacks[0]["lr"] == pytest.approx(0.5 * cfg.training.ppo.learning_rate)
    assert rollbacks[1]["lr"] == pytest.approx(0.25 * cfg.training.ppo.learning_rate)
    restored = tracker.metrics[2][1]
    assert "policy/loss" not in restored  # the degraded rollout is not trained on
    assert restored["objective/kl_coef_next"] == pytest.approx(2 * tracker.metrics[1][1]["objective/kl_coef_next"])
    restored_weights = trainer.checkpoints.best_loadable()[1].trainable
    assert rollbacks[1]["restored"] == rollbacks[0]["restored"]
    assert set(restored_weights) == set(trainer.bundle.trainable_state_dict())
    assert any(kind == "rollback" for _, kind, _, _ in tracker.events)


def test_alert_rule_on_approx_kl_stops_the_epoch_loop(learnable_gpt2_dir, tmp_path):
    rule = {"name": "training_divergence", "condition": "kl > 0.000001", "severity": "warning",
            "action": "early_stop_epoch"}
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 2}, alerts=[rule],
                         ppo={"target_kl": None})
    trainer, tracker, audit = make_trainer(cfg)
    trainer.train()
    # the first mini-batch's KL is measured before any step (ratio 1); the second one stops
    assert series(tracker, "policy/optimizer_steps") == [2.0, 2.0]
    assert series(tracker, "policy/early_stopped") == [1.0, 1.0]
    assert audit.events().count("alert") == 2


def test_out_of_memory_halves_the_micro_batch_and_retries(learnable_gpt2_dir, tmp_path, caplog):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 2})
    trainer, tracker, _ = make_trainer(cfg)
    real_forward = trainer.bundle.forward

    def forward(input_ids, attention_mask, **kwargs):
        if input_ids.shape[0] > 4 and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(input_ids, attention_mask, **kwargs)

    trainer.bundle.forward = forward
    with caplog.at_level(logging.WARNING):
        assert trainer.train().status == "completed"
    assert "out of memory in the PPO update: micro-batch halved to 8" in caplog.text
    assert "halved to 4" in caplog.text
    assert series(tracker, "system/micro_batch_size") == [4.0, 4.0]


def pressured_memory():
    """The real monitor, fed a reading at 90% of RAM (its warning fraction is 85%)."""
    from clinical_rlhf.config import MemoryConfig
    from clinical_rlhf.monitoring.memory import MemoryMonitor, MemoryReading

    reading = MemoryReading(rss_bytes=1, host_used_bytes=90, host_total_bytes=100)
    return MemoryMonitor(MemoryConfig(), probe=lambda: reading)


def test_memory_monitor_warning_halves_the_micro_batch(learnable_gpt2_dir, tmp_path, caplog):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 2})
    trainer, tracker, _ = make_trainer(cfg, memory=pressured_memory())
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert "memory monitor reports warning: micro-batch halved to 8" in caplog.text
    assert series(tracker, "system/micro_batch_size") == [8.0, 8.0]  # once per warning episode
    assert series(tracker, "memory/pressure_level") == [1.0, 1.0]


def test_the_optimizer_steps_all_adapter_tensors_at_once_with_the_per_tensor_results(tiny_gpt2_dir, tmp_path):
    """AdamW with `foreach` (one kernel per operation over every adapter tensor) is the trainer's
    optimizer, and its steps equal the per-tensor implementation's bit for bit."""
    trainer, _, _ = make_trainer(trainer_config(tiny_gpt2_dir, tmp_path))
    assert trainer.optimizer.defaults["foreach"] is True
    parameters = trainer.bundle.trainable_parameters()
    copies = [torch.nn.Parameter(parameter.detach().clone()) for parameter in parameters]
    per_tensor = torch.optim.AdamW(copies, lr=trainer.ppo.learning_rate, weight_decay=0.0, foreach=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for parameter, copy in zip(parameters, copies):
            parameter.grad = torch.randn(parameter.shape, generator=generator)
            copy.grad = parameter.grad.clone()
        trainer.optimizer.step()
        per_tensor.step()
    assert all(torch.equal(parameter, copy) for parameter, copy in zip(parameters, copies))
