"""DPO end to end on a tiny GPT-2: held-out preference accuracy and margin rise, the policy moves
while the disabled-adapter reference does not, SIGTERM + `--resume auto` ends with exactly the
parameters of an uninterrupted run, the audit log verifies, and checkpoints of the other
algorithm are refused."""

import json
import os
import signal

import pytest
import torch

from clinical_rlhf.errors import CheckpointError, InputDataError
from clinical_rlhf.feedback import PreferenceRecord, write_preferences
from clinical_rlhf.models.tiny import tiny_model_config
from clinical_rlhf.monitoring.tracking import RunTracker
from clinical_rlhf.rl.dpo import DPOTrainer, load_preference_splits
from clinical_rlhf.rl.preference_batches import reference_logprobs
from clinical_rlhf.rl.trainer import PPOTrainer
from clinical_rlhf.safety import AuditLog
from clinical_rlhf.safety.audit_verify import verify_audit_log
from clinical_rlhf.seeding import seed_everything

from .conftest import PROMPTS, fresh_bundle, trainer_config
from .fakes import LetterGuard, RecordingAudit, RecordingTracker, VowelReward

GOOD = ("Call emergency services now.", "See a doctor today.", "Ask your pharmacist before taking it.",
        "Stop the medicine and get urgent care.")
BAD = ("Ignore it.", "Take double the dose.", "Wait a week and see.", "No need to worry at all.")


def pairs(prefix: str, count: int, offset: int = 0) -> list[PreferenceRecord]:
    """`count` decisive pairs (the safe-sounding answer wins; as answer a or b alternately)."""
    records = []
    for i in range(count):
        good, bad = GOOD[(i + offset) % 4], BAD[(i * 3 + offset) % 4]
        prompt = f"{prefix} question {i}: chest pain and medicines, what should I do?"
        a_wins = i % 2 == 0
        records.append(PreferenceRecord(f"{prefix}-{i}", prompt, good if a_wins else bad, bad if a_wins else good,
                                        "a" if a_wins else "b", "dr-test"))
    return records


TIES = [PreferenceRecord(f"tie-{i}", f"tie question {i}", GOOD[i], GOOD[i + 1], "tie", "dr-test") for i in range(3)]
TRAIN = pairs("train", 40) + TIES
HELDOUT = pairs("heldout", 12, offset=1) + TIES[:1]
STEPS = 10  # 40 decisive pairs / batch 8 = 5 steps per epoch, 2 epochs


def dpo_config(model_dir, runs_dir, **dpo):
    section = {"learning_rate": 5e-3, "batch_size": 8, "micro_batch_size": 4, "epochs": 2, "eval_frequency": 5,
               "beta": 0.1} | dpo
    return tiny_model_config(model_dir, training={"algorithm": "dpo", "runs_dir": str(runs_dir), "run_name": "dpo",
                                                  "seed": 5, "dpo": section, "checkpoint": {"save_frequency": 2},
                                                  "ppo": {"max_new_tokens": 8}},
                             safety={"audit": {"fsync": "never"}}, monitoring={"alerts": [], "tracking": {"enabled": False}})


def run(cfg, *, resume=None, callbacks=(), train=TRAIN):
    """A DPO run with the real audit log and tracker (MLflow off), the fake guard and reward."""
    seed_everything(cfg.training.seed)
    bundle = fresh_bundle(cfg)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    with AuditLog(cfg.run_dir / "audit.jsonl", fsync="never") as audit, \
            RunTracker(cfg, cfg.run_dir, resume=resume is not None, write_report=False) as tracker:
        trainer = DPOTrainer(cfg, bundle, tracker, train_pairs=train, eval_pairs=HELDOUT, audit=audit,
                             guard=LetterGuard(), reward_fn=VowelReward(), eval_prompts=PROMPTS[:8],
                             callbacks=callbacks)
        result = trainer.train(resume=resume)
    return trainer, result


def metrics_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(learnable_gpt2_dir, tmp_path_factory):
    cfg = dpo_config(learnable_gpt2_dir, tmp_path_factory.mktemp("dpo-straight"))
    trainer, result = run(cfg)
    return cfg, trainer, result


@pytest.mark.slow
def test_dpo_raises_heldout_preference_accuracy_and_margin(uninterrupted):
    cfg, _, result = uninterrupted
    assert result.status == "completed" and result.iterations_done == STEPS
    before, after = result.before, result.after
    assert before["preference_accuracy"] == 0.5 and before["preference_margin"] == 0.0  # policy = reference
    assert after["preference_accuracy"] >= 0.9, after
    assert after["preference_margin"] > 0.5 and after["preference_loss"] < before["preference_loss"]
    # the sampled-answer evaluation (guard + reward) is PPO's, in the same evaluation.json
    for key in ("reward", "components", "unsafe_ratio", "kl", "missing_eos_ratio"):
        assert key in before and key in after
    assert before["kl"] == pytest.approx(0.0, abs=1e-5) and after["kl"] > 0.5  # the policy left the reference
    stored = json.loads((cfg.run_dir / "evaluation.json").read_text())
    assert stored["after"]["preference_accuracy"] == after["preference_accuracy"]

    lines = metrics_lines(cfg.run_dir)
    start = lines[0]["metrics"]
    assert lines[0]["step"] == 0 and start["dpo/data/ties_skipped"] == 4.0  # 3 in train, 1 held out
    assert start["dpo/data/train_pairs"] == 40.0 and start["dpo/data/heldout_pairs"] == 12.0
    last = lines[-1]["metrics"]
    for key in ("dpo/loss", "dpo/rewards/chosen", "dpo/rewards/rejected", "dpo/rewards/margin",
                "dpo/rewards/accuracy", "dpo/logps/chosen", "dpo/grad_norm", "dpo/lr", "dpo/epoch",
                "dpo/eval/rewards/accuracy", "dpo/eval/rewards/margin", "dpo/eval/loss", "time/step"):
        assert key in last, key
    assert [line["step"] for line in lines] == list(range(STEPS + 1))
    assert last["dpo/lr"] < cfg.training.dpo.learning_rate  # linear decay
    train_margins = [line["metrics"]["dpo/rewards/margin"] for line in lines[1:]]
    assert sum(train_margins[-3:]) > sum(train_margins[:3])


@pytest.mark.slow
def test_policy_moves_and_the_disabled_adapter_reference_does_not(uninterrupted, learnable_gpt2_dir):
    cfg, trainer, _ = uninterrupted
    untouched = fresh_bundle(cfg)
    moved = {name: value for name, value in trainer.bundle.trainable_state_dict().items() if name.startswith("policy.")}
    initial = untouched.trainable_state_dict()
    assert any(not torch.equal(value, initial[name]) for name, value in moved.items() if "lora_B" in name)
    assert all(torch.equal(value, initial[name]) for name, value in moved.items() if "lora" not in name)
    # the reference after training is the reference before: same log-probs, bit for bit
    torch.testing.assert_close(reference_logprobs(trainer.bundle, trainer.eval_set, 4), trainer.eval_reference,
                               rtol=0, atol=0)
    torch.testing.assert_close(reference_logprobs(untouched, trainer.eval_set, 4), trainer.eval_reference,
                               rtol=0, atol=0)


@pytest.mark.slow
def test_audit_log_verifies_and_records_the_run(uninterrupted):
    cfg, _, _ = uninterrupted
    report = verify_audit_log(cfg.run_dir / "audit.jsonl")
    assert report.ok, report.summary()
    records = [json.loads(line) for line in (cfg.run_dir / "audit.jsonl").read_text().splitlines()]
    events = [record["event"] for record in records]
    assert events[0] == "run_start" and events[-1] == "run_end" and events.count("checkpoint") == STEPS // 2
    start = records[0]["details"]
    assert start["algorithm"] == "dpo" and start["ties_skipped"] == {"train": 3, "heldout": 1}
    assert records[-1]["details"]["status"] == "completed"


@pytest.mark.slow
def test_sigterm_then_resume_gives_the_uninterrupted_parameters(uninterrupted, learnable_gpt2_dir, tmp_path):
    _, straight, straight_result = uninterrupted
    cfg = dpo_config(learnable_gpt2_dir, tmp_path)

    def terminate_after_three(step, metrics):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    _, first = run(cfg, callbacks=[terminate_after_three])
    assert first.status == "interrupted" and first.iterations_done == 3
    assert "stopped by SIGTERM after step 3" in first.message and first.last_checkpoint.name == "iter-000003"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    with pytest.raises(CheckpointError, match="other preference pairs"):
        run(cfg, resume="auto", train=pairs("other", 40))

    resumed, second = run(cfg, resume="auto")
    assert second.status == "completed" and second.iterations_done == STEPS
    expected = straight.bundle.trainable_state_dict()
    for name, value in resumed.bundle.trainable_state_dict().items():
        assert torch.equal(value, expected[name]), f"{name} differs after resume"
    timeless = [{k: v for k, v in m.items() if not k.startswith("time/")} for m in straight_result.history]
    assert [{k: v for k, v in m.items() if not k.startswith("time/")} for m in second.history] == timeless[3:]
    assert second.before == straight_result.before  # the stored `before` is kept on resume
    assert verify_audit_log(cfg.run_dir / "audit.jsonl").ok
    events = [json.loads(line)["event"] for line in (cfg.run_dir / "audit.jsonl").read_text().splitlines()]
    assert events.count("run_start") == 2 and events.count("run_end") == 2


def ppo_run(model_dir, runs_dir, *, resume=None):
    cfg = trainer_config(model_dir, runs_dir, training={"num_iterations": 1, "run_name": "dpo"},
                         ppo={"batch_size": 4, "mini_batch_size": 4, "micro_batch_size": 4, "max_new_tokens": 4,
                              "ppo_epochs": 1})
    seed_everything(cfg.training.seed)
    return PPOTrainer(cfg, fresh_bundle(cfg), LetterGuard(), VowelReward(), RecordingTracker(),
                      train_prompts=PROMPTS, audit=RecordingAudit()).train(resume=resume)


def test_dpo_refuses_to_resume_a_ppo_checkpoint(learnable_gpt2_dir, tmp_path):
    assert ppo_run(learnable_gpt2_dir, tmp_path).status == "completed"
    cfg = dpo_config(learnable_gpt2_dir, tmp_path)
    trainer = DPOTrainer(cfg, fresh_bundle(cfg), RecordingTracker(), train_pairs=TRAIN)
    with pytest.raises(CheckpointError, match="written by training.algorithm: ppo, this run is training.algorithm: dpo"):
        trainer.train(resume="auto")
    with pytest.raises(CheckpointError, match="already holds checkpoints"):  # nor start over it
        trainer.train()


def test_ppo_refuses_to_resume_a_dpo_checkpoint(learnable_gpt2_dir, tmp_path):
    cfg = dpo_config(learnable_gpt2_dir, tmp_path, epochs=1, batch_size=40)
    trainer = DPOTrainer(cfg, fresh_bundle(cfg), RecordingTracker(), train_pairs=TRAIN)
    assert trainer.train().status == "completed"
    with pytest.raises(CheckpointError, match="training.algorithm: dpo"):
        ppo_run(learnable_gpt2_dir, tmp_path, resume="auto")


def test_ties_only_and_missing_files_are_clear_errors(tiny_policy, tiny_gpt2_dir, tmp_path):
    cfg = dpo_config(tiny_gpt2_dir, tmp_path)
    with pytest.raises(InputDataError, match="no preference pair with a winner"):
        DPOTrainer(cfg, tiny_policy, RecordingTracker(), train_pairs=TIES)
    write_preferences(tmp_path / "train.jsonl", TRAIN)
    write_preferences(tmp_path / "heldout.jsonl", HELDOUT)
    files = tiny_model_config(tiny_gpt2_dir, training={"dpo": {"train_file": str(tmp_path / "train.jsonl"),
                                                               "heldout_file": str(tmp_path / "heldout.jsonl")}})
    train, heldout = load_preference_splits(files)
    assert [r.id for r in train] == [r.id for r in TRAIN] and len(heldout) == len(HELDOUT)
    missing = tiny_model_config(tiny_gpt2_dir, training={"dpo": {"train_file": str(tmp_path / "absent.jsonl")}})
    with pytest.raises(InputDataError, match="absent.jsonl: preference file not found"):
        load_preference_splits(missing)


def test_without_lora_the_frozen_copy_is_the_reference(learnable_gpt2_dir, tmp_path):
    cfg = dpo_config(learnable_gpt2_dir, tmp_path, epochs=1, batch_size=40, learning_rate=1e-3)
    cfg = cfg.model_copy(update={"model_loading": cfg.model_loading.model_copy(update={"use_lora": False})})
    bundle = fresh_bundle(cfg)
    assert not bundle.uses_lora
    trainer = DPOTrainer(cfg, bundle, RecordingTracker(), train_pairs=TRAIN, eval_pairs=HELDOUT)
    result = trainer.train()
    assert result.status == "completed" and result.after["preference_margin"] > 0.0
    torch.testing.assert_close(reference_logprobs(bundle, trainer.eval_set, 4), trainer.eval_reference, rtol=0, atol=0)


def test_default_files_are_the_shipped_preference_set():
    from clinical_rlhf.config import Config

    train, heldout = load_preference_splits(Config())
    assert train and heldout
    assert not {r.id for r in train} & {r.id for r in heldout}


@pytest.mark.slow
def test_more_epochs_on_resume_restretch_the_linear_schedule_and_mark_the_resume(learnable_gpt2_dir, tmp_path,
                                                                                caplog):
    import logging

    from clinical_rlhf.monitoring.runfiles import read_metrics
    from clinical_rlhf.safety.audit_current import read_current_records

    _, first = run(dpo_config(learnable_gpt2_dir, tmp_path, epochs=1))
    assert first.status == "completed" and first.iterations_done == STEPS // 2
    longer = dpo_config(learnable_gpt2_dir, tmp_path, epochs=2)
    with caplog.at_level(logging.WARNING):
        _, second = run(longer, resume="auto")
    assert second.status == "completed" and second.iterations_done == STEPS
    rates = {step: metrics["dpo/lr"] for step, metrics in read_metrics(longer.run_dir) if step > STEPS // 2}
    # The saved schedule ended at 0 at step 5; re-stretched it is base x (1 - done / 10) with done = step - 1.
    assert rates == pytest.approx({step: 5e-3 * (1 - (step - 1) / STEPS) for step in range(6, STEPS + 1)})
    assert "re-stretched to end at 10" in caplog.text
    records = read_current_records(longer.run_dir / "audit.jsonl")
    assert [r["details"] for r in records if r["event"] == "resumed_from"] == [{"iteration": 5,
                                                                                  "checkpoint": "iter-000005"}]
