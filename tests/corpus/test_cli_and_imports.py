"""The `corpus export` command, and the package staying free of torch."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from clinical_rlhf.corpus import load_prompts_jsonl
from clinical_rlhf.cli.corpus_cmd import register


def test_export_writes_both_splits_sized_by_the_config(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("demo_model:\n  corpus_size: 200\n  seed: 5\n", encoding="utf-8")
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group needs a callback to keep `corpus` as a subcommand
        pass

    result = CliRunner().invoke(app, ["corpus", "export", "--out", str(tmp_path / "out"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    train = load_prompts_jsonl(tmp_path / "out" / "train.jsonl")
    heldout = load_prompts_jsonl(tmp_path / "out" / "heldout.jsonl")
    assert len(train) + len(heldout) == 200
    assert "fingerprint" in result.output


def test_importing_and_building_the_corpus_does_not_import_torch():
    code = ("import sys; from clinical_rlhf.corpus import build_corpus; build_corpus(size=100); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
