"""`clinical-rlhf config ...` as a user runs it: a real subprocess, exit codes, one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_validate_and_show_with_overrides() -> None:
    ok = run_cli("config", "validate", "config/production_config.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout
    shown = run_cli("config", "show", "config/production_config.yaml", "--set", "training.seed=7")
    assert shown.returncode == 0, shown.stderr
    resolved = yaml.safe_load(shown.stdout)
    assert resolved["training"]["seed"] == 7
    assert resolved["model"]["name"] == "biomistral-7b"


def test_bad_config_ends_with_one_clear_line_and_exit_2() -> None:
    result = run_cli("config", "validate", str(FIXTURES / "invalid" / "unknown_key.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown key `training.ppo.learning_rat`" in result.stderr
