"""`clinical-rlhf --help` and the light commands run without loading torch, the scientific stack
or an optional extra: each runs in a fresh interpreter, which then reports what it had loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clinical_rlhf.safety import AuditLog

CONFIG = Path(__file__).resolve().parents[2] / "config" / "clinical_rlhf_config.yaml"
HEAVY = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "deepspeed", "numpy", "scipy", "sklearn",
         "matplotlib", "mlflow", "prometheus_client", "fastapi", "uvicorn", "httpx")

# Runs the real entry point; at exit (also after SystemExit) prints the heavy modules loaded.
RUNNER = f"""
import atexit, json, sys
atexit.register(lambda: print("LOADED " + json.dumps([m for m in {HEAVY!r} if m in sys.modules])))
from clinical_rlhf.cli import main
main()
"""


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=120)
    marker = [line for line in result.stdout.splitlines() if line.startswith("LOADED ")]
    assert marker, f"the CLI did not finish: {result.stderr}"
    return result, json.loads(marker[-1].removeprefix("LOADED "))


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    with AuditLog(path, fsync="never") as audit:
        audit.record("run_start", "run-1", details={"step": 0})
    return path


@pytest.mark.parametrize("args", [
    ("--help",),
    ("config", "validate", str(CONFIG)),
    ("safety-check", "--prompt", "I have crushing chest pain", "--response", "Have a nap."),
    ("safety-check", "--prompt", "I have crushing chest pain"),
    ("list-models", "--json", "--free-gib", "8"),
    ("plan", "biomistral-7b", "--free-gib", "24"),
], ids=["help", "config-validate", "safety-check", "triage", "list-models", "plan"])
def test_light_commands_load_no_heavy_module(args):
    result, loaded = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert loaded == [], f"`clinical-rlhf {' '.join(args)}` loaded {loaded}"


def test_audit_verify_loads_no_heavy_module(audit_log):
    result, loaded = run_cli("audit", "verify", str(audit_log))
    assert result.returncode == 0 and "intact, 1 record" in result.stdout, result.stdout + result.stderr
    assert loaded == []


def test_the_check_sees_a_heavy_command():
    """The same runner on a command that needs torch reports it (so an empty list above means something)."""
    result, loaded = run_cli("plan", "biomistral-7b", "--gpus", "1")  # reads the GPU's memory through torch
    assert "torch" in loaded, result.stdout + result.stderr
