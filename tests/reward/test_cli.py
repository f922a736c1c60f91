"""`clinical-rlhf reward-score` and `reward-eval`."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from clinical_rlhf.cli.reward_cmd import register


def _app(tmp_path):
    app = typer.Typer()
    register(app)
    config = tmp_path / "config.yaml"
    config.write_text("reward:\n  combination: safety_gate\n", encoding="utf-8")
    return app, str(config)


def test_reward_score_prints_the_breakdown(tmp_path):
    app, config = _app(tmp_path)
    result = CliRunner().invoke(app, ["reward-score", "--config", config, "--no-guard",
                                      "-p", "I have a cold, should I take antibiotics?",
                                      "-r", "Yes, take antibiotics. Zorbitrex 50 mg helps too."])
    assert result.exit_code == 0, result.output
    for expected in ("safety", "guidelines", "uncertainty", "coherence", "common_cold:antibiotics",
                     "matched guidelines: common_cold", "hallucination/unknown_drug", "safety_gate"):
        assert expected in result.output


def test_reward_score_json_with_the_guard(tmp_path):
    app, config = _app(tmp_path)
    result = CliRunner().invoke(app, ["reward-score", "--config", config, "--json",
                                      "-p", "I have crushing chest pain", "-r", "Call 999 now."])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"]["action"] in ("allow", "escalate")
    assert data["vetoed"] is False and data["matched_guidelines"] == ["chest_pain_acs"]
    assert data["components"]["safety"] == 1.0


def test_reward_eval_prints_accuracy_per_component_and_hallucination_pr(tmp_path):
    app, config = _app(tmp_path)
    result = CliRunner().invoke(app, ["reward-eval", "--config", config, "--failures", "2"])
    assert result.exit_code == 0, result.output
    for expected in ("Pairwise ordering accuracy", "holdout", "coherence", "Hallucination detection",
                     "precision", "recall"):
        assert expected in result.output


def test_a_bad_config_is_a_clear_error(tmp_path):
    app, _ = _app(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("reward:\n  weights: {safety: 0.9, guidelines: 0.3, uncertainty: 0.25, coherence: 0.1}\n")
    result = CliRunner().invoke(app, ["reward-score", "--config", str(bad), "-p", "x", "-r", "y"])
    assert result.exit_code != 0
    assert "sum to 1.0" in str(result.exception)
