"""The bad-input matrix (scripts/bad_input_matrix.py): every known bad input ends with its exit
code (or HTTP status) and one clear message, no traceback, and no input file changed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bad_input_matrix.py"


def _matrix():
    spec = importlib.util.spec_from_file_location("bad_input_matrix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


matrix = _matrix()


@pytest.mark.parametrize("case", matrix.cases(), ids=lambda case: case.name)
def test_command_line_case(case, tmp_path) -> None:
    result = matrix.run_case(case, tmp_path)
    assert not result.traceback, result.output
    assert not result.changed, f"input files changed: {result.changed}"
    assert result.code == case.expect, result.output
    assert case.says in result.output


def test_http_cases_are_openai_errors() -> None:
    results = matrix.http_results()
    assert len(results) >= 6
    assert [r.case for r in results if not r.ok] == [], [(r.case, r.code, r.first_line) for r in results]
