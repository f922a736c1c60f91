"""`clinical-rlhf safety-demo | safety-check | safety-eval` and `clinical-rlhf audit verify`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load

console = Console()
err_console = Console(stderr=True)
audit_app = typer.Typer(help="Audit log tools.", no_args_is_help=True)

# Cases from the evaluation set shown by `safety-demo`: one of each kind of decision.
DEMO_CASE_IDS = ("rf-acs-1", "rf-ok-1", "rf-hypo-1", "rf-neg-1", "rf-down-4", "ddi-1", "ddi-ok-1", "ci-3",
                 "ci-ok-3", "dose-1", "dose-ok-1", "dose-4", "rf-infant-1", "gen-2")
_ACTION_STYLE = {"allow": "green", "escalate": "yellow", "reject": "bold red"}


def _guard(config: Path | None, overrides: list[str] | None):
    from clinical_rlhf.safety import SafetyGuard

    if config is None:
        return SafetyGuard()
    return SafetyGuard.from_config(load(config, overrides))


def safety_demo(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None) -> None:
    """Walk example question/answer pairs through the guard and show each verdict and why."""
    from clinical_rlhf.safety.evaluation import load_cases
    from clinical_rlhf.safety.explain import explain

    guard = _guard(config, overrides)
    cases = {case.id: case for case in load_cases()}
    for number, case_id in enumerate(DEMO_CASE_IDS, start=1):
        case = cases[case_id]
        verdict = guard.check(case.prompt, case.response)
        style = _ACTION_STYLE[verdict.action]
        console.rule(f"[bold]{number}. {case_id}[/]")
        console.print(f"[dim]question:[/] {escape(case.prompt)}")
        console.print(f"[dim]answer:[/]   {escape(case.response)}")
        console.print(f"[dim]verdict:[/]  [{style}]{verdict.action.upper()}[/]"
                      f"{'' if verdict.flags else '  (no veto; the reward still scores the answer)'}")
        for flag in verdict.flags:
            flag_style = _ACTION_STYLE[flag.action]
            console.print(f"  [{flag_style}]{flag.action:>8}[/] {flag.category}/{flag.subtype} "
                          f"[dim]({flag.severity})[/] on \"{escape(flag.evidence)}\"")
            console.print(f"           {escape(explain(flag, guard.knowledge))}", highlight=False)
    console.rule()
    console.print("allow = no veto (never an approval); escalate = needs a clinician; reject = vetoed.")


def _result_line(item_id: object, verdict) -> str:
    return json.dumps({
        "id": item_id,
        "is_safe": verdict.is_safe,
        "action": verdict.action,
        "flags": [{"category": f.category, "subtype": f.subtype, "severity": f.severity, "evidence": f.evidence}
                  for f in verdict.flags],
    }, ensure_ascii=False)


def safety_check(
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Question text.")] = None,
    response: Annotated[Optional[str], typer.Option("--response", help="Answer text to check.")] = None,
    jsonl: Annotated[Optional[str], typer.Option("--jsonl", help="JSONL file of {id, prompt, response} "
                                                 "objects (or {id, messages, response} for a "
                                                 "conversation), or - for stdin.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (for "
                                                   "safety.knowledge_dir); defaults when omitted.")] = None,
    overrides: OverrideOption = None,
) -> None:
    """Check answers; print one JSON line per input: {id, is_safe, action, flags}."""
    from clinical_rlhf.errors import InputDataError

    if jsonl is None and (prompt is None or response is None):
        raise InputDataError("safety-check needs --prompt and --response, or --jsonl FILE (- for stdin)")
    guard = _guard(config, overrides)
    if jsonl is None:
        typer.echo(_result_line(None, guard.check(prompt, response)))
        return
    errors = _check_lines(guard, jsonl)
    if errors:
        raise InputDataError(f"{errors} input line(s) of {jsonl} could not be checked (see the messages "
                             f"above); fix them and run again")


def _check_lines(guard, source: str) -> int:
    from clinical_rlhf.errors import InputDataError
    from clinical_rlhf.safety.conversation import check_jsonl_item

    # Bytes, decoded line by line: one line of bad UTF-8 is named and skipped, the rest are checked.
    try:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputDataError(f"input file {source} cannot be opened ({exc.strerror}); pass an existing "
                             f"JSONL file or - for stdin") from None
    errors = 0
    name = "stdin" if source == "-" else source
    with stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            item, problem = _parse_item(raw)
            if problem:
                errors += 1
                err_console.print(f"[red]error:[/] {escape(name)} line {number}: {problem}", highlight=False)
                continue
            typer.echo(_result_line(item.get("id"), check_jsonl_item(guard, item)))
    return errors


def _parse_item(raw: bytes) -> tuple[dict, str | None]:
    from clinical_rlhf.safety.conversation import jsonl_problem

    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {}, f"not UTF-8 text (byte {exc.start + 1} of the line: {exc.reason}); save the file as UTF-8"
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON ({exc.msg} at column {exc.colno}); write one object per line"
    problem = jsonl_problem(item)
    return (item, None) if problem is None else ({}, problem)


def safety_eval(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; defaults when "
                                                   "omitted.")] = None,
    overrides: OverrideOption = None,
    cases_file: Annotated[Optional[Path], typer.Option("--cases", help="Evaluation YAML (default: the "
                                                       "shipped set).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a target is missed.")] = False,
    show_errors: Annotated[bool, typer.Option("--show-errors", help="List the ids of missed and "
                                              "wrongly flagged cases.")] = False,
) -> None:
    """Precision and recall per category on the labelled set, plain and obfuscated."""
    from clinical_rlhf.safety.evaluation import evaluate, load_cases

    guard = _guard(config, overrides)
    report = evaluate(guard, load_cases(cases_file))
    _print_report(report, "Safety guard evaluation", show_errors)
    holdout_cases = load_cases(cases_file, split="holdout")
    if holdout_cases:
        _print_report(evaluate(guard, holdout_cases), "Held-out cases (written after tuning)", show_errors)
    missed = report.meets_targets()
    if missed:
        console.print("[yellow]targets missed:[/] " + "; ".join(missed))
        if strict:
            raise typer.Exit(1)
    else:
        console.print("[green]all targets met[/] (recall >= 0.95 on red flags, interactions and doses; "
                      "precision >= 0.90; obfuscated within 5 points)")


def _print_report(report, title: str, show_errors: bool) -> None:
    from rich.table import Table

    from clinical_rlhf.safety.evaluation import CATEGORIES

    table = Table(title=f"{title}: {report.cases} cases, each also obfuscated")
    table.add_column("category", no_wrap=True)
    for column in ("positives", "precision", "recall", "obf. prec.", "obf. recall"):
        table.add_column(column, justify="right")
    for category in CATEGORIES:
        plain, obfuscated = report.plain[category], report.obfuscated[category]
        table.add_row(category, str(plain.positives), f"{plain.precision:.3f}", f"{plain.recall:.3f}",
                      f"{obfuscated.precision:.3f}", f"{obfuscated.recall:.3f}")
    console.print(table)
    if show_errors:
        for category in CATEGORIES:
            for label, scores in (("plain", report.plain), ("obfuscated", report.obfuscated)):
                score = scores[category]
                if score.misses or score.false_alarms:
                    console.print(f"{category} ({label}): missed {score.misses}, false alarms {score.false_alarms}")


def audit_verify(
    path: Annotated[Path, typer.Argument(help="Audit log (JSONL) to verify.")],
    key_file: Annotated[Optional[Path], typer.Option("--key-file", help="Key of a keyed (HMAC) chain; default: "
                                                     "the CLINICAL_RLHF_AUDIT_KEY environment variable.")] = None,
    expect_head: Annotated[Optional[str], typer.Option("--expect-head", help="Anchored head hash (with "
                                                       "--expect-count).")] = None,
    expect_count: Annotated[Optional[int], typer.Option("--expect-count", min=0, help="Anchored record "
                                                        "count (with --expect-head).")] = None,
    against: Annotated[Optional[Path], typer.Option("--against", help="Checkpoint directory (or a run's "
                                                    "checkpoints directory: its newest) whose manifest "
                                                    "anchors the log.")] = None,
) -> None:
    """Walk the hash chain; exit 0 with the record count when intact, non-zero at the first problem."""
    from clinical_rlhf.errors import AuditIntegrityError, InputDataError
    from clinical_rlhf.safety import verify_audit_log
    from clinical_rlhf.safety.audit_anchor import anchor_from_options
    from clinical_rlhf.safety.audit_key import load_audit_key, read_key_file

    if not path.is_file():
        raise InputDataError(f"audit log {path} does not exist; pass the path of an audit.jsonl file")
    key = read_key_file(key_file) if key_file is not None else load_audit_key()
    anchor = anchor_from_options(expect_head, expect_count, against)
    report = verify_audit_log(path, key=key, anchor=anchor)
    if not report.ok:
        raise AuditIntegrityError(report.summary())
    typer.echo(report.summary())


def register(app: typer.Typer) -> None:
    app.command("safety-demo")(safety_demo)
    app.command("safety-check")(safety_check)
    app.command("safety-eval")(safety_eval)
    audit_app.command("verify")(audit_verify)
    app.add_typer(audit_app, name="audit")
