"""`clinical-rlhf list-models` and `plan`: JSON shape, hardware-aware fit, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from clinical_rlhf.cli import app
from clinical_rlhf.models import list_model_entries

REPO = Path(__file__).resolve().parents[2]


def test_list_models_json_has_every_entry_with_memory_and_fit() -> None:
    result = CliRunner().invoke(app, ["list-models", "--json", "--device", "cuda", "--free-gib", "24"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["hardware"] == {"device_type": "cuda", "device_name": "cuda (assumed)", "free_bytes": 24 * 1024**3}
    models = {m["id"]: m for m in data["models"]}
    assert list(models) == [e.id for e in list_model_entries()]
    mistral = models["biomistral-7b"]
    assert mistral["hub_id"] == "BioMistral/BioMistral-7B" and mistral["lora_target_modules"][0] == "q_proj"
    assert list(mistral["memory_bytes"]) == ["fp16", "int8", "nf4"]
    assert mistral["recommended_precision"] == "fp16" and mistral["fits"]["fp16"]
    assert models["meditron-70b"]["recommended_precision"] is None
    assert not any(models["meditron-70b"]["fits"].values())


def test_list_models_table_and_details_render() -> None:
    result = CliRunner().invoke(app, ["list-models", "--details"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "biomistral-7b" in result.output and "[INST] {prompt} [/INST]" in result.output


def test_plan_prints_the_overrides_or_the_numbers() -> None:
    runner = CliRunner()
    fits = runner.invoke(app, ["plan", "medalpaca-13b", "--device", "cuda", "--free-gib", "24"], env={"COLUMNS": "200"})
    assert fits.exit_code == 0
    assert "int8 fits" in fits.output and "--set model_loading.load_in_8bit=true" in fits.output
    too_big = runner.invoke(app, ["plan", "meditron-70b", "--device", "cuda", "--free-gib", "24"],
                            env={"COLUMNS": "200"})
    assert "does not fit: even nf4 needs ~46.4 GiB but only 24.0 GiB" in too_big.output


def test_unknown_model_ends_with_one_line_and_exit_2() -> None:
    result = subprocess.run([sys.executable, str(REPO / "main.py"), "plan", "meditron7b"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown model `meditron7b`; did you mean `meditron-7b`" in result.stderr
