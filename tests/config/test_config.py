"""The config schema: valid and invalid fixtures, overrides, and what the user is told."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clinical_rlhf.config import Config, load_config
from clinical_rlhf.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((FIXTURES / "valid").glob("*.yaml")), ids=lambda p: p.stem)
def test_valid_fixtures_load(path: Path) -> None:
    assert isinstance(load_config(path), Config)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("malformed", "is not valid YAML at line 3"),
        ("unknown_key", "unknown key `training.ppo.learning_rat`"),
        ("wrong_type", "`training.num_iterations`"),
        ("both_quantizations", "mutually exclusive"),
        ("weights_sum", "sum to 1.1500"),
        ("negative_weight", "`reward.weights.guidelines`"),
        ("not_a_mapping", "must hold a mapping"),
        ("bad_choice", "`model.device`"),
        ("group_with_one_sample", "training.ppo.samples_per_prompt must be at least 2"),
        ("micro_over_mini", "training.ppo.micro_batch_size (16) is larger than training.ppo.mini_batch_size (8)"),
        ("mini_over_rollout", "training.ppo.mini_batch_size (32) is larger than one rollout"),
        ("dpo_micro_over_batch", "training.dpo.micro_batch_size (8) is larger than training.dpo.batch_size (4)"),
    ],
)
def test_invalid_fixtures_name_the_problem(name: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(FIXTURES / "invalid" / f"{name}.yaml")
    message = str(caught.value)
    assert expected in message
    assert f"{name}.yaml" in message, "the message must name the file"


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("shipped", ["clinical_rlhf_config.yaml", "production_config.yaml"])
def test_shipped_configs_are_valid(shipped: str) -> None:
    load_config(REPO / "config" / shipped)


def test_production_config_is_what_the_issue_promises() -> None:
    cfg = load_config(REPO / "config" / "production_config.yaml")
    assert cfg.model.name == "biomistral-7b"
    assert cfg.model_loading.load_in_4bit and cfg.model_loading.bnb_4bit_quant_type == "nf4"
    assert cfg.model_loading.use_lora and cfg.model_loading.lora_r == 16
    assert cfg.model_loading.gradient_checkpointing


def test_overrides_are_typed_and_validated() -> None:
    cfg = load_config(None, ["training.seed=7", "training.ppo.target_kl=null",
                             "model_loading.target_modules=[q_proj, v_proj]"])
    assert cfg.training.seed == 7
    assert cfg.training.ppo.target_kl is None
    assert cfg.model_loading.target_modules == ("q_proj", "v_proj")
    assert load_config(None, ["training.algorithm=dpo"]).training.algorithm == "dpo"
    with pytest.raises(ConfigError, match="unknown key `training.ppo.bogus`"):
        load_config(None, ["training.ppo.bogus=1"])
    with pytest.raises(ConfigError, match="`training.algorithm`"):
        load_config(None, ["training.algorithm=grpo"])  # an algorithm that does not exist
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, ["training.seed"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(REPO / "config" / "clinical_rlhf_config.yaml", ["training.seed.x=1"])


def test_config_is_frozen_and_round_trips_through_yaml() -> None:
    cfg = load_config(REPO / "config" / "production_config.yaml")
    with pytest.raises(Exception):
        cfg.training.seed = 1  # type: ignore[misc]
    again = Config.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


def test_defaults_carry_the_analysis_alert_rules_and_weights() -> None:
    cfg = Config()
    assert [rule.condition for rule in cfg.monitoring.alerts] == [
        "unsafe_ratio > 0.10", "psi > 0.25", "kl > target_kl"]
    weights = cfg.reward.weights
    assert (weights.safety, weights.guidelines, weights.uncertainty, weights.coherence) == (
        0.35, 0.30, 0.25, 0.10)
    assert cfg.run_dir == Path("runs/demo")


def test_every_field_is_documented() -> None:
    """STYLE: every config field is documented where it is declared."""
    undocumented = []

    def walk(model_cls: type, prefix: str) -> None:
        for name, field in model_cls.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, Config.__mro__[1]):
                walk(annotation, f"{prefix}{name}.")
            elif not field.description:
                undocumented.append(prefix + name)

    walk(Config, "")
    assert undocumented == []


def test_duplicate_keys_are_refused_naming_the_key_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("training:\n  seed: 1\n  ppo:\n    batch_size: 8\n    batch_size: 16\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key `batch_size` appears twice in one section, at line 4 and line 5"):
        load_config(path)


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    from clinical_rlhf.config import read_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {seed: 1, run_name: a}\ntraining:\n  <<: *b\n  seed: 2\n", encoding="utf-8")
    assert read_yaml(path)["training"] == {"seed": 2, "run_name": "a"}


def test_a_config_of_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("training:\n  run_name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(line 2"):
        load_config(path)
