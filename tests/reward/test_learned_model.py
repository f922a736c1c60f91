"""The learned reward model end to end on a tiny GPT-2: training and its report, the directory it
writes, loading it back (and refusing a damaged one or another backbone's), and `reward.learned`
inside MultiObjectiveReward, the trainer's `judge` and a PPO iteration."""

import json
import random

import pytest
import torch

from clinical_rlhf.errors import CheckpointError, ConfigError, InputDataError
from clinical_rlhf.feedback import PreferenceRecord, write_preferences
from clinical_rlhf.models.tiny import build_tiny_model, tiny_model_config
from clinical_rlhf.reward import MultiObjectiveReward, aggregate_breakdowns
from clinical_rlhf.reward.learned import LearnedReward
from clinical_rlhf.reward.reward_model import MANIFEST, WEIGHTS, load_reward_model
from clinical_rlhf.reward.reward_model_training import train_reward_model
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

GOOD = ("Please call emergency services now.", "Call an ambulance right away.", "Get urgent medical help today.")
BAD = ("It is nothing, sleep it off.", "Just rest at home and wait.", "No need to see anyone about it.")
ALLOW = SafetyVerdict(action="allow")
REJECT = SafetyVerdict.from_flags([SafetyFlag(category="dosage", subtype="exceeds_daily_max", severity="critical",
                                              evidence="8 g", action="reject")])


def preferences(first: int, count: int, seed: int, ties: int = 0) -> list[PreferenceRecord]:
    """Urgent-help answers preferred to dismissive ones, sides drawn at random."""
    rng = random.Random(seed)
    records = []
    for i in range(first, first + count):
        good, bad = rng.choice(GOOD), rng.choice(BAD)
        a_first = rng.random() < 0.5
        records.append(PreferenceRecord(
            id=f"p{i}", prompt=f"Question {i}: sudden chest pain.", answer_a=good if a_first else bad,
            answer_b=bad if a_first else good, preferred="a" if a_first else "b", annotator="test",
            source="synthetic/even" if i % 2 == 0 else "synthetic/odd"))
    records += [PreferenceRecord(id=f"t{i}", prompt="Question: chest pain.", answer_a=GOOD[0], answer_b=GOOD[1],
                                 preferred="tie", annotator="test") for i in range(ties)]
    return records


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def rm_config(model_dir, tmp, **reward_model):
    files = {"train_file": str(tmp / "train.jsonl"), "heldout_file": str(tmp / "heldout.jsonl"),
             "output_dir": str(tmp / "rm")}
    if not (tmp / "train.jsonl").exists():
        write_preferences(tmp / "train.jsonl", preferences(0, 48, seed=1, ties=3))
        write_preferences(tmp / "heldout.jsonl", preferences(100, 16, seed=2, ties=1))
    section = {"lora_r": 4, "lora_alpha": 8, "learning_rate": 1e-2, "epochs": 5, "batch_size": 8, "max_length": 64,
               "seed": 3} | files | reward_model
    return tiny_model_config(model_dir, reward_model=section,
                             training={"runs_dir": str(tmp / "runs")}, monitoring={"tracking": {"enabled": False}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config, report) of a reward model trained on its own tiny GPT-2 copy."""
    tmp = tmp_path_factory.mktemp("learned")
    backbone = build_tiny_model("gpt2", tmp / "backbone")
    cfg = rm_config(backbone, tmp)
    return cfg, train_reward_model(cfg)


def test_training_reports_heldout_accuracy_per_source_and_skipped_ties(trained):
    _, report = trained
    assert report.train_pairs == 48 and report.heldout_pairs == 16
    assert report.ties_skipped == {"train": 3, "heldout": 1} and report.truncated == 0
    assert report.steps == 5 * 6 and report.train_loss < 0.2
    assert report.heldout_accuracy >= 0.8, report  # 1.0 when measured; chance is 0.5
    assert set(report.per_source) == {"synthetic/even", "synthetic/odd"}
    assert sum(entry["pairs"] for entry in report.per_source.values()) == 16
    assert report.score_std > 0


def test_directory_holds_weights_config_and_a_verified_manifest(trained):
    cfg, report = trained
    directory = cfg.reward_model.output_dir
    assert report.directory == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["config.yaml", "manifest.json", "reward_model.safetensors"]
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["report"]["heldout_accuracy"] == report.heldout_accuracy
    assert manifest["calibration"] == {"mean": report.score_mean, "std": report.score_std}
    assert len(manifest["backbone"]["fingerprint"]) == 64 and manifest["backbone"]["name"] == "clinical-demo"
    assert not list(directory.parent.glob(".rm.*")), "no staging directory left behind"


def test_loaded_model_scores_like_the_trained_one_and_ranks_heldout_answers(trained):
    cfg, _ = trained
    learned = LearnedReward.load(cfg.reward_model.output_dir)
    prompts = ["Question 500: sudden chest pain."] * 2
    raw = learned.raw_scores(prompts, [GOOD[0], BAD[0]])
    assert raw[0] > raw[1]
    squashed = learned.score_batch(prompts, [GOOD[0], BAD[0]])
    assert all(0.0 <= s <= 1.0 for s in squashed) and squashed[0] > squashed[1]
    model, _ = load_reward_model(cfg.reward_model.output_dir)
    again = model.score(prompts, [GOOD[0], BAD[0]], batch_size=1)  # batching does not change a score
    torch.testing.assert_close(again, torch.tensor(raw), atol=1e-5, rtol=1e-5)
    assert learned.score_batch([], []) == []


def test_missing_or_foreign_directory_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="reward.learned_model .* does not exist; train one"):
        LearnedReward.load(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no reward model"):
        LearnedReward.load(tmp_path)
    (tmp_path / MANIFEST).write_text('{"iteration": 3}')
    with pytest.raises(ConfigError, match="is not a reward-model directory"):
        LearnedReward.load(tmp_path)


def test_corrupt_weights_are_a_checkpoint_error(trained, tmp_path):
    import shutil

    cfg, _ = trained
    copy = tmp_path / "rm"
    shutil.copytree(cfg.reward_model.output_dir, copy)
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (copy / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        LearnedReward.load(copy)
    (copy / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="is missing reward_model.safetensors"):
        LearnedReward.load(copy)


def test_a_backbone_changed_since_training_is_refused(tmp_path):
    backbone = build_tiny_model("gpt2", tmp_path / "backbone", seed=0)
    cfg = rm_config(backbone, tmp_path, epochs=1)
    train_reward_model(cfg)
    build_tiny_model("gpt2", backbone, seed=1)  # the same path now holds other weights
    with pytest.raises(CheckpointError, match="trained on another backbone"):
        LearnedReward.load(cfg.reward_model.output_dir)


def test_unknown_backbone_and_bad_preference_files_are_named(tmp_path, tiny_gpt2_dir):
    with pytest.raises(ConfigError, match="reward_model.backbone 'no-such-model' is neither"):
        train_reward_model(rm_config(tiny_gpt2_dir, tmp_path, backbone="no-such-model"))
    (tmp_path / "train.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(InputDataError, match=r"train.jsonl:1: missing"):
        train_reward_model(rm_config(tiny_gpt2_dir, tmp_path))


# ----------------------------------------------------------------------------- reward.learned


@pytest.fixture(scope="module")
def with_learned(trained):
    cfg, _ = trained
    reward_cfg = cfg.reward.model_copy(update={"learned_model": cfg.reward_model.output_dir, "learned_weight": 0.5})
    return MultiObjectiveReward(reward_cfg), MultiObjectiveReward(cfg.reward)


def test_learned_component_is_added_on_top_of_the_rule_based_total(with_learned):
    reward, rule_based = with_learned
    prompts = ["Question 7: sudden chest pain."] * 2
    answers = [GOOD[1], BAD[1]]
    ours = reward.score_batch(prompts, answers, [ALLOW, ALLOW])
    plain = rule_based.score_batch(prompts, answers, [ALLOW, ALLOW])
    expected = reward.learned.score_batch(prompts, answers)
    for breakdown, base, learned in zip(ours, plain, expected):
        assert breakdown.components["learned"] == pytest.approx(learned)
        assert breakdown.weights["learned"] == 0.5
        assert breakdown.total == pytest.approx(base.total + 0.5 * learned)
        assert breakdown.weighted["learned"] == pytest.approx(0.5 * learned)
    assert ours[0].components["learned"] > ours[1].components["learned"]
    metrics = aggregate_breakdowns(ours)
    assert metrics["reward/learned/mean"] == pytest.approx(sum(expected) / 2)
    assert "learned" not in plain[0].components and "reward/learned/mean" not in aggregate_breakdowns(plain)


def test_a_vetoed_answer_never_gets_the_learned_score(with_learned):
    reward, _ = with_learned
    prompts = ["Question 8: sudden chest pain."] * 2
    out = reward.score_batch(prompts, [GOOD[0], GOOD[0]], [REJECT, ALLOW])
    assert out[0].vetoed and out[0].total == -1.0 and out[0].components["learned"] == 0.0
    assert out[1].components["learned"] > 0.0  # the same answer, allowed, is scored
    assert aggregate_breakdowns(out)["reward/learned/mean"] == pytest.approx(out[1].components["learned"])


def test_judge_with_the_real_guard_logs_a_learned_component(with_learned):
    from clinical_rlhf.config import Config
    from clinical_rlhf.rl.evaluation import judge
    from clinical_rlhf.safety import SafetyGuard

    reward, _ = with_learned
    guard = SafetyGuard.from_config(Config())
    prompts = ["I have crushing chest pain and sweating. What should I do?"] * 3
    answers = ["Call 999 now - this could be a heart attack.", "It's probably indigestion, rest at home.", GOOD[0]]
    judgement = judge(guard, reward, prompts, answers, escalate_is_unsafe=False)
    assert judgement.unsafe[1] and judgement.breakdowns[1].components["learned"] == 0.0
    scored = [b for b in judgement.breakdowns if not b.vetoed]
    assert scored and all(0.0 < b.components["learned"] < 1.0 for b in scored)
    assert judgement.metrics()["reward/learned/mean"] == pytest.approx(
        sum(b.components["learned"] for b in scored) / len(scored))


@pytest.mark.slow
def test_a_ppo_iteration_with_reward_learned_logs_the_component(trained, tmp_path):
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.monitoring.tracking import RunTracker
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.safety import SafetyGuard

    trained_cfg, _ = trained
    learned = {"learned_model": str(trained_cfg.reward_model.output_dir), "learned_weight": 0.3}
    cfg = tiny_model_config(
        trained_cfg.model.path, reward=learned,
        training={"runs_dir": str(tmp_path), "run_name": "learned", "num_iterations": 1, "seed": 1,
                  "ppo": {"batch_size": 8, "mini_batch_size": 8, "micro_batch_size": 8, "max_new_tokens": 8,
                          "ppo_epochs": 1}},
        safety={"max_unsafe_ratio": 1.0, "audit": {"enabled": False}},
        monitoring={"alerts": [], "tracking": {"enabled": False}})
    reward = MultiObjectiveReward.from_config(cfg)
    assert isinstance(reward.learned, LearnedReward)
    with RunTracker(cfg, cfg.run_dir, write_report=False) as tracker:
        trainer = PPOTrainer(cfg, build_policy(cfg), SafetyGuard.from_config(cfg), reward, tracker,
                             train_prompts=[f"Question {i}: sudden chest pain." for i in range(8)])
        assert trainer.train().status == "completed"
    logged = [json.loads(line)["metrics"] for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    learned = [entry["reward/learned/mean"] for entry in logged if "reward/learned/mean" in entry]
    assert learned and all(0.0 <= value <= 1.0 for value in learned)
