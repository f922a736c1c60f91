"""The run report: content from a played run, robustness to missing files, and a real render in
headless Chromium whose screenshot must show the charts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from clinical_rlhf.cli import app
from clinical_rlhf.errors import EmergencyStop, InputDataError
from clinical_rlhf.monitoring.report import render_report, write_report

from .simulated_run import play_run

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


@pytest.fixture
def stopped_run(make_cfg):
    """A run with a reward shift (drift alerts), a rollback and an emergency stop."""
    cfg = make_cfg("report", "monitoring.tracking.enabled=false")
    with pytest.raises(EmergencyStop):
        play_run(cfg, iterations=30, unsafe_from=24, reward_shift_from=16, rollback_at=12)
    return cfg.run_dir


def test_report_holds_every_section_and_is_self_contained(stopped_run):
    html = render_report(stopped_run)
    for title in ("Reward: total and components", "Unsafe (vetoed) answer ratio",
                  "Vetoes by category (share of answers)", "KL to the reference (per answer)",
                  "Approximate KL per update (to the rollout policy)",
                  "KL coefficient β", "Lagrange multiplier λ", "Drift: PSI against the reference",
                  "Drift: KS p-value (log scale)", "Drift: CUSUM", "Time per iteration", "Memory in use",
                  "Alerts, rollbacks and stops", "Before / after evaluation", "Sample answers, before and after",
                  "Configuration"):
        assert title in html, title
    assert html.count("<svg") == 14
    # each KL beside its own target: kl_target for the reference KL, target_kl for the per-update one
    charts = re.findall(r"<svg.*?</svg>", html, re.DOTALL)
    [kl_ref] = [chart for chart in charts if "KL to the reference (per answer)" in chart]
    [approx] = [chart for chart in charts if "Approximate KL per update" in chart]
    assert "kl_target 6" in kl_ref and "target_kl" not in kl_ref
    assert "target_kl 0.1" in approx and "kl_target" not in approx
    assert "not recorded in this run" not in html  # every chart had data
    for component in ("safety", "guidelines", "uncertainty", "coherence"):
        assert f">{component}</text>" in html  # legend entry per reward component
    assert "KILLED" in html and "step 24" in html  # run status and emergency-stop card
    assert "unsafe ratio rose; restored the best checkpoint" in html
    # No external resource: nothing to fetch when the file is mailed or archived.
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html)
    assert "<script" not in html


def test_report_of_a_bare_run_directory(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    lines = [{"step": 1, "time": "t", "metrics": {"safety/unsafe_ratio": 0.05, "objective/kl": None}},
             {"step": 2, "time": "t", "metrics": {"safety/unsafe_ratio": 0.04}}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + '\n{"step": 3, "ti')
    html = render_report(run)  # torn last line skipped, no events, no config, no evaluation
    assert html.count("not recorded in this run") == 12 and "No evaluation.json" in html
    assert "running or crashed" in html
    (run / "evaluation.json").write_text(json.dumps({  # as the trainer writes it: nested components
        "before": {"reward": 0.25, "components": {"safety": 0.5}}, "after": {"reward": 0.75}}))
    html = render_report(run)
    assert re.search(r"<td>components/safety</td><td[^>]*>0.5</td><td[^>]*>—</td>", html)
    assert re.search(r"<td>reward</td><td[^>]*>0.25</td><td[^>]*>0.75</td><td[^>]*>\+0.5</td>", html)
    (run / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2, "metrics": {}}\n')
    with pytest.raises(InputDataError, match=r"metrics.jsonl, line 2: not valid JSON"):
        render_report(run)


def test_report_command_writes_the_file_and_explains_a_wrong_directory(stopped_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(stopped_run)])
    assert result.exit_code == 0, result.output
    assert (stopped_run / "report.html").stat().st_size > 20_000
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert isinstance(result.exception, InputDataError) and "has no metrics.jsonl" in str(result.exception)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)")
def test_report_renders_in_headless_chromium(stopped_run, tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    report = write_report(stopped_run)
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1800",
         f"--screenshot={screenshot}", report.resolve().as_uri()],
        capture_output=True, timeout=120, check=True)
    image = image_module.open(screenshot).convert("RGB")
    assert image.size == (1280, 1800)
    pixels = np.asarray(image).reshape(-1, 3).astype(np.int16)
    colors, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colors[counts.argmax()]
    share_drawn = np.any(pixels != background, axis=1).mean()
    assert share_drawn > 0.2, f"only {share_drawn:.1%} of the page differs from its background"
    assert len(colors) > 500  # text, lines and fills, not a flat page

    def near(color: tuple[int, int, int]) -> int:
        return int(np.all(np.abs(pixels - np.array(color)) < 30, axis=1).sum())

    assert near((0x1D, 0x2A, 0x44)) > 50_000  # the header band
    assert near((0xD6, 0x27, 0x28)) > 500  # red series and threshold lines in the charts
    assert near((0x1F, 0x77, 0xB4)) > 500  # blue series


def test_repeated_firings_of_a_rule_are_one_row_with_a_count():
    from clinical_rlhf.monitoring.report import group_events

    drift = [{"step": step, "kind": "alert", "rule": "reward_drift", "severity": "warning",
              "message": f"psi {step}"} for step in (*range(14, 41), 45)]
    events = [{"step": 0, "kind": "run_start"}, *drift[:5],
              {"step": 18, "kind": "checkpoint", "severity": "info", "message": "saved"}, *drift[5:]]
    rows = group_events(events)
    alerts = [row for row in rows if row["kind"] == "alert"]
    assert [(r["first_step"], r["last_step"], r["count"]) for r in alerts] == [(14, 40, 27), (45, 45, 1)]
    assert alerts[0]["message"] == "psi 40" and [r["kind"] for r in rows] == ["alert", "checkpoint", "alert"]


def test_sample_answers_appear_side_by_side(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "time": "t", "metrics": {"objective/kl": 0.1}}) + "\n")
    sample = {"prompt": "Chest pain <b>now</b>?", "action": "reject", "reward": -1.0, "response": "Rest."}
    (run / "evaluation.json").write_text(json.dumps({
        "before": {"reward": 0.2, "samples": [sample]},
        "after": {"reward": 0.7, "samples": [{**sample, "action": "allow", "reward": 0.8, "response": "Call 999."}]}}))
    html = render_report(run)
    assert re.search(r"<td>Chest pain &lt;b&gt;now&lt;/b&gt;\?</td><td>Rest\..*reject.*</td><td>Call 999\..*allow", html)
    assert "<td>samples</td>" not in html  # the answers are not squeezed into the metrics table
