"""What a user is told about a mistyped key, which source an error comes from, and where the
paths of a config point whatever the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinical_rlhf.config import CACHE_ENV, Config, default_cache_dir, load_config
from clinical_rlhf.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "clinical_rlhf_config.yaml"


@pytest.mark.parametrize(("override", "suggested"), [
    ("training.ppo.learning_rat=0.1", "did you mean `training.ppo.learning_rate`?"),
    ("training.num_iteration=3", "`training.num_iterations`"),
    ("monitoring.alerts=[{name: x, condition: 'kl > 1', severty: info}]", "`monitoring.alerts.0.severity`"),
])
def test_an_unknown_key_suggests_the_closest_valid_ones(override: str, suggested: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert suggested in str(caught.value)


def test_a_key_with_no_close_match_points_at_config_show() -> None:
    with pytest.raises(ConfigError, match="clinical-rlhf config show"):
        load_config(None, ["training.zzzzzz=1"])


def test_an_error_from_set_names_the_override_not_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(DEMO, ["training.num_iterations=-3"])
    message = str(caught.value)
    assert message.startswith("--set training.num_iterations=-3: `training.num_iterations`")
    assert "clinical_rlhf_config.yaml" not in message
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  num_iterations: -3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: `training\.num_iterations`"):
        load_config(bad, ["training.seed=3"])  # an unrelated override does not take the blame


def test_relative_paths_in_a_file_are_read_against_the_file(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    (project / "conf").mkdir(parents=True)
    path = project / "conf" / "run.yaml"
    path.write_text("training:\n  runs_dir: ../runs\n  prompts: data/train.jsonl\n"
                    "demo_model:\n  cache_dir: /abs/cache\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path, ["training.eval_prompts=held.jsonl"])
    assert cfg.training.runs_dir.resolve() == (project / "runs").resolve()
    assert cfg.training.prompts == project / "conf" / "data" / "train.jsonl"
    assert cfg.demo_model.cache_dir == Path("/abs/cache")
    assert cfg.training.eval_prompts == Path("held.jsonl")  # --set keeps the shell's meaning
    assert cfg.source == path.resolve() and cfg.experiment_name == "run"


def test_the_demo_config_finds_the_repository_runs_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(DEMO)
    assert cfg.run_dir.resolve() == REPO / "runs" / "demo"
    assert cfg.experiment_name == "clinical_rlhf_config"
    assert Config().experiment_name == "clinical-rlhf"


def test_the_demo_model_cache_is_the_user_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "clinical-rlhf"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert Config().demo_model.cache_dir == tmp_path / "mine" / "demo-model"
    assert load_config(DEMO).demo_model.cache_dir == tmp_path / "mine" / "demo-model"
