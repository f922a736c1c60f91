"""`evaluate --judge ... --suite ...` and `safety-case` end to end on the tiny GPT-2 trained by the
real trainer, with the `llm` judge served over HTTP by a replay server on 127.0.0.1."""

import json
from pathlib import Path

import pytest

from .replay_judge import ReplayJudge
from .test_evaluate_cli import cli, trained  # noqa: F401 - the fixture is used by name

CONFIG = Path(__file__).resolve().parents[2] / "config" / "clinical_rlhf_config.yaml"
HOLDOUT = '--set=safety.holdout_knowledge=["red_flag:stroke", "interaction:warfarin+nsaid"]'


def judge_options(server: ReplayJudge, run_dir) -> list[str]:
    return ["--set", "evaluation.llm_judge.backend=openai_compatible",
            "--set", f"evaluation.llm_judge.remote.base_url={server.base_url}",
            "--set", "evaluation.llm_judge.remote.model=replay-judge",
            "--set", "evaluation.llm_judge.rubrics=[under_triage, dosing_error]",
            "--set", f"evaluation.llm_judge.cache_file={run_dir / 'judge_cache.jsonl'}"]


def by_rubric(prompt: str) -> str:
    """Under-triage: every answer unsafe; dosing: unreadable prose; suite questions: refusals."""
    if "Concern: UNDER-TRIAGE" in prompt:
        return '{"verdict": "unsafe", "reason": "no urgency advice"}'
    if "Concern: DOSING ERROR" in prompt:
        return "Looks fine to me!"
    return '{"response": "refuse", "reason": "declines"}'


@pytest.mark.slow
def test_every_judge_and_their_agreement_and_then_the_safety_case(trained, monkeypatch, capsys, tmp_path):  # noqa: F811
    from clinical_rlhf.safety.audit_verify import verify_audit_log

    config, run_dir, _ = trained
    with ReplayJudge({}, pick=by_rubric) as server:
        args = ["evaluate", "--config", config, "--checkpoint", run_dir, "--baseline", "reference",
                "--set", "evaluation.conversations=false", HOLDOUT, *judge_options(server, run_dir),
                "--judge", "guard", "--judge", "holdout", "--judge", "llm"]
        code, out, err = cli(monkeypatch, capsys, *args)
        assert code == 0, err[-2000:]
        asked = len(server.requests)
        assert "iter-000002 was trained with safety.holdout_knowledge=[]" in " ".join(out.split())
        assert asked == 4 * 2 * 2  # prompts x policies x rubrics
        code, out_again, err = cli(monkeypatch, capsys, *args)
        assert code == 0 and len(server.requests) == asked  # the rerun came from the cache
    result = json.loads((run_dir / "evaluation" / "iter-000002_vs_reference" / "evaluation.json").read_text())
    section = result["judges"]
    assert section["judges"]["guard"]["training_signal"] is True
    assert section["judges"]["holdout"]["knowledge"]["red_flags"] == 1
    holdout = section["summary"]["holdout"]["A"]
    stroke_prompts = sum(bool(answer["judges"]["holdout"]["question_red_flags"]) for row in result["rows"]
                         for answer in row["A"][:1])
    assert holdout["held_out_red_flag_prompts"] == stroke_prompts
    assert holdout["unsafe_ratio_on_held_out_red_flags"]["n"] == stroke_prompts
    llm = section["summary"]["llm"]["A"]
    # every answer: under-triage unsafe -> unsafe, whatever the unreadable dosing reply
    assert llm["unsafe"] == 4 and llm["unsafe_ratio"]["value"] == 1.0 and llm["unparsable"] == 0
    pairs = {tuple(p["judges"]): p for p in section["agreement"]}
    assert set(pairs) == {("guard", "holdout"), ("guard", "llm"), ("holdout", "llm")}
    assert pairs[("guard", "llm")]["n"] == 8
    guard_unsafe = section["summary"]["guard"]["A"]["unsafe"] + section["summary"]["guard"]["B"]["unsafe"]
    assert pairs[("guard", "llm")]["agreement"] == pytest.approx(guard_unsafe / 8)
    differing = sum(len({v["label"] for v in answer["judges"].values()} - {"unparsable"}) > 1
                    for row in result["rows"] for label in ("A", "B") for answer in row[label])
    assert len(section["disagreements"]) == differing
    answer = result["rows"][0]["A"][0]
    assert set(answer["judges"]) == {"guard", "holdout", "llm"}
    assert {r["rubric"] for r in answer["judges"]["llm"]["replies"]} == {"under_triage", "dosing_error"}
    assert "Judges" in out and "Agreement between judges" in out and "training signal" in out
    page = (run_dir / "evaluation" / "iter-000002_vs_reference" / "evaluation.html").read_text()
    assert "<h2>Judges</h2>" in page and "Agreement between judges" in page

    code, out, err = cli(monkeypatch, capsys, "safety-case", run_dir, "--no-pdf")
    assert code == 0, err[-2000:]
    case = (run_dir / "safety_case.html").read_text()
    audit = verify_audit_log(run_dir / "audit.jsonl")
    assert audit.head_hash in case and f"<td>{audit.count}</td>" in case
    for heading in ("1. Claim", "2. Model", "3. Data and configuration", "4. Evidence", "5. Vetoes by category",
                    "6. Alerts and rollbacks", "7. Audit chain", "8. Known limits"):
        assert heading in case
    assert "holdout judge (independent)" in case and "guard judge (training signal)" in case
    assert f"{stroke_prompts} prompt(s) presenting a held-out red flag" in case
    assert f"{stroke_prompts} of the 4 prompts present a held-out red flag" in case  # a known limit
    assert "too few to conclude much" in case
    assert "No external suite" in case and "<script" not in case and "src=" not in case
    assert "limit" in out


@pytest.mark.slow
def test_a_suite_is_graded_by_the_llm_judge_and_carries_its_hash(trained, monkeypatch, capsys):  # noqa: F811
    from importlib import resources

    from clinical_rlhf.durable import sha256_file

    config, run_dir, _ = trained
    suite = resources.files("clinical_rlhf") / "data" / "suites" / "cares_sample.jsonl"
    with ReplayJudge({}, pick=by_rubric) as server:
        code, out, err = cli(monkeypatch, capsys, "evaluate", "--config", config, "--checkpoint", run_dir,
                             "--baseline", "reference", *judge_options(server, run_dir), "--suite", f"cares:{suite}",
                             "--output", run_dir / "evaluation" / "cares")
    assert code == 0, err[-2000:]
    result = json.loads((run_dir / "evaluation" / "cares" / "evaluation.json").read_text())
    section = result["suite"]
    assert section["sha256"] == sha256_file(suite) and section["cases"] == 6
    summary = section["summary"]["A"]
    assert summary["responses"] == {"refuse": 6}
    assert summary["over_refusal_ratio"]["value"] == 1.0 and summary["unsafe_compliance_ratio"]["value"] == 0.0
    assert summary["appropriate_ratio"]["value"] == pytest.approx(4 / 6)
    assert section["comparison"]["a_worse"] == section["comparison"]["b_worse"] == 0
    assert result["prompts"]["evaluated"] == 6 and all(row["A"][0]["suite"]["expected"] for row in result["rows"])
    assert "cares suite: 6 cases" in out


@pytest.mark.parametrize("args, message", [
    (["evaluate", "--checkpoint", "reference", "--suite", "mmlu:x.jsonl"], "expected FORMAT:PATH"),
    (["evaluate", "--checkpoint", "reference", "--suite", "cares:absent.jsonl"], "absent.jsonl: prompt file not found"),
    (["evaluate", "--checkpoint", "reference", "--judge", "gpt"], "unknown judge 'gpt'"),
    (["evaluate", "--checkpoint", "reference", "--judge", "holdout"], "the holdout judge needs safety.holdout_knowledge"),
    (["evaluate", "--checkpoint", "reference", "--set", "safety.holdout_knowledge=[strokes]"],
     "safety.holdout_knowledge: 'strokes' is not"),
    (["safety-case", "no/such/run"], "no such run directory"),
])
def test_user_errors_are_one_line(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    extra = ["--config", str(CONFIG), "--set", f"training.runs_dir={tmp_path}"] if args[0] == "evaluate" else []
    code, out, err = cli(monkeypatch, capsys, *args, *extra)
    assert code == 2 and message in err and "Traceback" not in err


def test_without_a_converter_there_is_no_pdf_and_the_html_stands(monkeypatch, tmp_path):
    import sys

    from clinical_rlhf.evaluation import safety_case_html

    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as if not installed
    monkeypatch.setattr(safety_case_html.shutil, "which", lambda name: None)
    assert safety_case_html.write_pdf("<html></html>", tmp_path / "case.pdf") is None
    assert not (tmp_path / "case.pdf").exists()
