"""Tables stay readable in an 80-column terminal: columns are dropped or shortened, never
squeezed into towers of letters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_at(columns: int, *args: str) -> str:
    result = subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                            cwd=REPO, timeout=300, env={"COLUMNS": str(columns), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("│")]


def test_list_models_drops_columns_to_fit_80_and_says_which() -> None:
    narrow = run_at(80, "list-models", "--free-gib", "24")
    assert all(len(line) <= 80 for line in narrow.splitlines())
    rows = table_rows(narrow)
    assert len(rows) == 13 and any(row.startswith("│ biomistral-7b ") for row in rows)  # one line per model
    assert "Left out to fit 80 columns: hub id" in narrow
    wide = run_at(200, "list-models", "--free-gib", "24")
    assert "BioMistral/BioMistral-7B" in wide and "Left out" not in wide


def test_reward_eval_fits_80_columns_one_line_per_row() -> None:
    output = run_at(80, "reward-eval")
    assert all(len(line) <= 80 for line in output.splitlines())
    ordering = output.split("Hallucination detection")[0]
    rows = [row for row in table_rows(ordering) if row.split("│")[1].strip() in ("dev", "all", "holdout3")]
    assert len(rows) == 3 and all("/" in row for row in rows)  # "accuracy passed/tests" stays on one line
