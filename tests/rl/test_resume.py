"""Interruption and resume: SIGTERM saves and exits cleanly, `--resume auto` continues so that
every later iteration's metrics equal those of an uninterrupted run (same seed, CPU)."""

import os
import signal

import pytest

from clinical_rlhf.rl.trainer import PPOTrainer
from clinical_rlhf.seeding import seed_everything

from .conftest import PROMPTS, fresh_bundle, trainer_config
from .fakes import LetterGuard, RecordingAudit, RecordingTracker, VowelReward

ITERATIONS = 6


def run(cfg, *, resume=None, on_iteration=None, before_generate=None):
    seed_everything(cfg.training.seed)
    bundle = fresh_bundle(cfg)
    if before_generate is not None:
        real_generate = bundle.model.generate

        def generate(*args, **kwargs):
            before_generate()
            return real_generate(*args, **kwargs)

        bundle.model.generate = generate
    tracker, audit = RecordingTracker(), RecordingAudit()
    trainer = PPOTrainer(cfg, bundle, LetterGuard(), VowelReward(), tracker, train_prompts=PROMPTS, audit=audit,
                         callbacks=[on_iteration] if on_iteration else [])
    return trainer, trainer.train(resume=resume), tracker, audit


def comparable(tracker):
    """Metrics per iteration without wall-clock timings."""
    return {step: {k: v for k, v in metrics.items() if not k.startswith("time/")} for step, metrics in tracker.metrics}


def config(model_dir, runs_dir):
    return trainer_config(model_dir, runs_dir, training={"num_iterations": ITERATIONS, "checkpoint": {"save_frequency": 2}},
                          ppo={"samples_per_prompt": 2, "batch_size": 8, "reward_normalization": True})


@pytest.fixture(scope="module")
def uninterrupted(learnable_gpt2_dir, tmp_path_factory):
    _, result, tracker, _ = run(config(learnable_gpt2_dir, tmp_path_factory.mktemp("straight")))
    assert result.status == "completed"
    return comparable(tracker)


@pytest.mark.slow
def test_sigterm_saves_and_resume_matches_an_uninterrupted_run(learnable_gpt2_dir, tmp_path, uninterrupted):
    cfg = config(learnable_gpt2_dir, tmp_path)

    def terminate_after_three(iteration, metrics):
        if iteration == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    _, first, _, audit = run(cfg, on_iteration=terminate_after_three)
    assert first.status == "interrupted" and first.iterations_done == 3
    assert "stopped by SIGTERM after iteration 3" in first.message and "--resume auto" in first.message
    assert first.last_checkpoint.name == "iter-000003"
    assert audit.records[-1][2]["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored

    _, second, tracker, _ = run(cfg, resume="auto")
    assert second.status == "completed"
    resumed = comparable(tracker)
    assert sorted(resumed) == [4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step] == uninterrupted[step], f"iteration {step} differs after resume"


@pytest.mark.slow
def test_stop_during_rollout_abandons_it_and_resume_repeats_it_exactly(learnable_gpt2_dir, tmp_path, uninterrupted):
    cfg = config(learnable_gpt2_dir, tmp_path)
    calls = {"n": 0}
    trainer_ref = {}

    def stop_in_fourth_rollout():
        # Each iteration generates in micro-batches of 16 answers: one call per iteration.
        calls["n"] += 1
        if calls["n"] == 4:
            trainer_ref["trainer"].signals.request("SIGTERM")

    seed_everything(cfg.training.seed)
    bundle = fresh_bundle(cfg)
    real_generate = bundle.model.generate
    bundle.model.generate = lambda *a, **k: (stop_in_fourth_rollout(), real_generate(*a, **k))[1]
    trainer = PPOTrainer(cfg, bundle, LetterGuard(), VowelReward(), RecordingTracker(), train_prompts=PROMPTS)
    trainer_ref["trainer"] = trainer
    result = trainer.train()
    assert result.status == "interrupted" and result.iterations_done == 3  # the 4th was abandoned

    _, _, tracker, _ = run(cfg, resume="auto")
    resumed = comparable(tracker)
    for step in (4, 5, 6):
        assert resumed[step] == uninterrupted[step]


def test_resume_skips_a_corrupt_checkpoint_with_a_warning(learnable_gpt2_dir, tmp_path, caplog):
    cfg = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 4, "checkpoint": {"save_frequency": 2}},
                         ppo={"batch_size": 8, "mini_batch_size": 8, "micro_batch_size": 8})
    run(cfg)
    weights = cfg.run_dir / "checkpoints" / "iter-000004" / "trainable.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\x00" * 8)
    resumed_cfg = trainer_config(learnable_gpt2_dir, tmp_path,
                                 training={"num_iterations": 5, "checkpoint": {"save_frequency": 2}},
                                 ppo={"batch_size": 8, "mini_batch_size": 8, "micro_batch_size": 8})
    trainer, result, tracker, _ = run(resumed_cfg, resume="auto")
    assert "does not match its checksum" in caplog.text and "falling back" in caplog.text
    assert [step for step, _ in tracker.metrics] == [3, 4, 5]  # continued from iteration 2
    assert result.status == "completed"


def test_resume_refuses_a_checkpoint_trained_on_another_base_model(learnable_gpt2_dir, tiny_gpt2_dir, tmp_path):
    from clinical_rlhf.errors import CheckpointError

    small = {"batch_size": 8, "mini_batch_size": 8, "micro_batch_size": 8}
    run(trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 1}, ppo=small))
    other_base = trainer_config(tiny_gpt2_dir, tmp_path, training={"num_iterations": 2}, ppo=small)
    with pytest.raises(CheckpointError, match="different base-model weights"):
        run(other_base, resume="auto")


def test_more_iterations_on_resume_restretch_the_linear_schedule_and_mark_the_resume(learnable_gpt2_dir, tmp_path,
                                                                                     caplog):
    import logging

    from clinical_rlhf.monitoring.runfiles import METRICS_FILE

    small = {"batch_size": 8, "mini_batch_size": 8, "micro_batch_size": 8, "lr_schedule": "linear",
             "learning_rate": 1e-3}
    run(trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 2}, ppo=small))
    longer = trainer_config(learnable_gpt2_dir, tmp_path, training={"num_iterations": 4}, ppo=small)
    with caplog.at_level(logging.WARNING):
        _, result, tracker, audit = run(longer, resume="auto")
    assert result.status == "completed"
    rates = {step: metrics["policy/lr"] for step, metrics in tracker.metrics}
    # Saved rate at the end of the 2-iteration schedule is 0; the re-stretched one is base x (1 - step / 4).
    assert rates == pytest.approx({3: 1e-3 * (1 - 2 / 4), 4: 1e-3 * (1 - 3 / 4)})
    assert "re-stretched to end at 4" in caplog.text and "0 -> 0.0005" in caplog.text
    assert audit.events()[0] == "resumed_from" and audit.records[0][2] == {"iteration": 2, "checkpoint": "iter-000002"}
    assert tracker.events[0][1] == "resumed_from"
    assert '"resumed_from": 2' in (longer.run_dir / METRICS_FILE).read_text(encoding="utf-8")
