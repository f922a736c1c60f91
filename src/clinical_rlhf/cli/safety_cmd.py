"""`clinical-rlhf safety-demo | safety-check | safety-eval` and `clinical-rlhf audit verify`."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.errors import AuditIntegrityError, InputDataError
from clinical_rlhf.safety import SafetyGuard, verify_audit_log
from clinical_rlhf.safety.audit_anchor import anchor_from_options
from clinical_rlhf.safety.audit_key import load_audit_key, read_key_file
from clinical_rlhf.safety.conversation import check_jsonl_item, jsonl_problem, triage_jsonl_item
from clinical_rlhf.safety.evaluation import (
    CATEGORIES,
    OBFUSCATION_GAP,
    PRECISION_TARGET,
    RECALL_TARGET,
    RECALL_TARGETED,
    evaluate,
    load_cases,
)
from clinical_rlhf.safety.explain import explain

console = Console()
err_console = Console(stderr=True)
audit_app = typer.Typer(help="Audit log tools.", no_args_is_help=True)

# Cases from the evaluation set shown by `safety-demo`: one of each kind of decision.
DEMO_CASE_IDS = ("rf-acs-1", "rf-ok-1", "rf-hypo-1", "rf-neg-1", "rf-down-4", "ddi-1", "ddi-ok-1", "ci-3",
                 "ci-ok-3", "dose-1", "dose-ok-1", "dose-4", "rf-infant-1", "gen-2")
_ACTION_STYLE = {"allow": "green", "escalate": "yellow", "reject": "bold red"}
ACTION_LEVEL = {"allow": 0, "escalate": 1, "reject": 2}
# Input errors exit 2 (InputDataError), so a CI job can tell "an answer reached the level" from "broken input".
FAIL_ON_EXIT_CODE = 1


class FailOn(str, enum.Enum):
    reject = "reject"
    escalate = "escalate"


def _guard(config: Path | None, overrides: list[str] | None):
    if config is None:
        return SafetyGuard()
    return SafetyGuard.from_config(load(config, overrides))


def safety_demo(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None) -> None:
    """Walk example question/answer pairs through the guard and show each verdict and why."""
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


def _flag_list(verdict) -> list[dict[str, str]]:
    return [{"category": f.category, "subtype": f.subtype, "severity": f.severity, "evidence": f.evidence}
            for f in verdict.flags]


def _result_line(item_id: object, verdict) -> str:
    """An answer's verdict, with the urgency of the question it answers."""
    return json.dumps({
        "id": item_id,
        "is_safe": verdict.is_safe,
        "action": verdict.action,
        "flags": _flag_list(verdict),
        **({"urgency": verdict.triage.urgency} if verdict.triage is not None else {}),
    }, ensure_ascii=False)


def _triage_line(item_id: object, verdict) -> str:
    """A question's triage: its urgency, its red flags (as `check_prompt` escalates them), the
    reasons for its urgency and the intents it states."""
    triage = verdict.triage
    return json.dumps({"id": item_id, "urgency": triage.urgency, "flags": _flag_list(verdict),
                       "reasons": [reason.to_dict() for reason in triage.reasons],
                       "intents": sorted(triage.intents)}, ensure_ascii=False)


def safety_check(
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="Question text.")] = None,
    response: Annotated[Optional[str], typer.Option("--response", help="Answer text to check.")] = None,
    jsonl: Annotated[Optional[str], typer.Option("--jsonl", help="JSONL file of {id, prompt, response} "
                                                 "objects (or {id, messages, response} for a "
                                                 "conversation; without response the question is "
                                                 "triaged), or - for stdin.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (for "
                                                   "safety.knowledge_dir); defaults when omitted.")] = None,
    overrides: OverrideOption = None,
    fail_on: Annotated[Optional[FailOn], typer.Option(
        "--fail-on", help="Exit 1 when any answer's verdict reaches this level (escalate: escalate or "
                          "reject), so a CI job can gate on the answers; triaged questions never "
                          "trip it.")] = None,
) -> None:
    """Check answers, or triage questions; print one JSON line per input: {id, is_safe, action,
    flags, urgency} for an answer, {id, urgency, flags, reasons, intents} for a question alone."""
    if jsonl is None and prompt is None:
        raise InputDataError("safety-check needs --prompt (add --response to check an answer to it), or "
                             "--jsonl FILE (- for stdin)")
    if jsonl is not None and (prompt is not None or response is not None):
        raise InputDataError("safety-check takes --jsonl or --prompt/--response, not both; put the pair in "
                             "the file or drop --jsonl")
    guard = _guard(config, overrides)
    if jsonl is None:
        errors = 0
        if response is None:
            typer.echo(_triage_line(None, guard.check_prompt(prompt)))
            actions = []
        else:
            actions = [_echo_verdict(None, guard.check(prompt, response))]
    else:
        errors, actions = _check_lines(guard, jsonl)
    if errors:
        raise InputDataError(f"{errors} input line(s) of {jsonl} could not be checked (see the messages "
                             f"above); fix them and run again")
    _gate(actions, fail_on)


def _echo_verdict(item_id: object, verdict) -> str:
    typer.echo(_result_line(item_id, verdict))
    return verdict.action


def _gate(actions: list[str], fail_on: FailOn | None) -> None:
    """Exit FAIL_ON_EXIT_CODE when a verdict reached `fail_on`, naming how many did."""
    if fail_on is None:
        return
    level = ACTION_LEVEL[fail_on.value]
    reached = sum(ACTION_LEVEL[action] >= level for action in actions)
    if reached:
        err_console.print(f"safety-check: {reached} of {len(actions)} verdict(s) reached "
                          f"--fail-on {fail_on.value}", highlight=False)
        raise typer.Exit(FAIL_ON_EXIT_CODE)


def _check_lines(guard, source: str) -> tuple[int, list[str]]:
    """Check or triage each line; (bad lines, the actions of the answers checked)."""
    # Bytes, decoded line by line: one line of bad UTF-8 is named and skipped, the rest are checked.
    try:
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputDataError(f"input file {source} cannot be opened ({exc.strerror}); pass an existing "
                             f"JSONL file or - for stdin") from None
    errors, actions = 0, []
    name = "stdin" if source == "-" else source
    with stream:
        for number, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            item, problem = _parse_item(raw)
            if problem:
                errors += 1
                err_console.print(f"[red]error:[/] {escape(name)} line {number}: {problem}", highlight=False,
                                  soft_wrap=True)  # one line per bad input line, never wrapped mid-path
                continue
            if "response" in item:
                actions.append(_echo_verdict(item.get("id"), check_jsonl_item(guard, item)))
            else:
                typer.echo(_triage_line(item.get("id"), triage_jsonl_item(guard, item)))
    return errors, actions


def _parse_item(raw: bytes) -> tuple[dict, str | None]:
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
    guard = _guard(config, overrides)
    report = evaluate(guard, load_cases(cases_file))
    _print_report(report, "Safety guard evaluation", show_errors)
    _print_targets(report, "labelled set")
    holdout_cases = load_cases(cases_file, split="holdout")
    if holdout_cases:
        holdout = evaluate(guard, holdout_cases)
        _print_report(holdout, "Held-out cases (written after tuning)", show_errors)
        _print_targets(holdout, "held-out set")
        console.print("  [dim](the held-out set is reported, not gated by --strict)[/]")
    if strict and report.meets_targets():
        raise typer.Exit(1)


def _ratio(numerator: int, denominator: int) -> str:
    """A share, or an en dash when there is nothing to divide by (never a made-up 1.000)."""
    return f"{numerator / denominator:.3f}" if denominator else "–"


def _target_status(report) -> tuple[list[str], list[str], list[str]]:
    """(met, missed, not measured) targets of one evaluation, each in words."""
    met, missed, unmeasured = [], [], []
    for category in CATEGORIES:
        plain, obfuscated = report.plain[category], report.obfuscated[category]
        flagged = plain.true_positive + plain.false_positive
        checks = [("precision", plain.precision, PRECISION_TARGET, flagged)]
        if category in RECALL_TARGETED:
            checks.append(("recall", plain.recall, RECALL_TARGET, plain.positives))
        for name, value, target, denominator in checks:
            if not denominator:
                unmeasured.append(f"{category} {name} (no {'flags' if name == 'precision' else 'positives'})")
            else:
                (met if value >= target else missed).append(f"{category} {name} {value:.3f} "
                                                            f"{'>=' if value >= target else '<'} {target}")
        if plain.positives:
            gap = plain.recall - obfuscated.recall
            (met if gap <= OBFUSCATION_GAP else missed).append(
                f"{category} obfuscated recall {obfuscated.recall:.3f} "
                f"{'within' if gap <= OBFUSCATION_GAP else 'more than'} {OBFUSCATION_GAP:.0%} of plain")
    return met, missed, unmeasured


def _print_targets(report, label: str) -> None:
    met, missed, unmeasured = _target_status(report)
    console.print(f"[bold]{label}[/]: {len(met)} target(s) met, {len(missed)} missed, {len(unmeasured)} not measured")
    if missed:
        console.print("  [yellow]missed:[/] " + "; ".join(missed), highlight=False)
    if unmeasured:
        console.print("  [dim]not measured:[/] " + "; ".join(unmeasured), highlight=False)
    if met:
        console.print("  [green]met:[/] " + "; ".join(met), highlight=False)


def _print_report(report, title: str, show_errors: bool) -> None:
    table = Table(title=f"{title}: {report.cases} cases, each also obfuscated")
    table.add_column("category", no_wrap=True)
    for column in ("positives", "precision", "recall", "obf. prec.", "obf. recall"):
        table.add_column(column, justify="right")
    for category in CATEGORIES:
        plain, obfuscated = report.plain[category], report.obfuscated[category]
        table.add_row(category, str(plain.positives),
                      _ratio(plain.true_positive, plain.true_positive + plain.false_positive),
                      _ratio(plain.true_positive, plain.positives),
                      _ratio(obfuscated.true_positive, obfuscated.true_positive + obfuscated.false_positive),
                      _ratio(obfuscated.true_positive, obfuscated.positives))
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
    against: Annotated[Optional[Path], typer.Option("--against", help="Checkpoint directory (or a "
                                                    "run directory: its newest anchored one) whose manifest "
                                                    "anchors the log.")] = None,
) -> None:
    """Walk the hash chain; exit 0 with the record count when intact, non-zero at the first problem."""
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise InputDataError(f"audit log {path} {problem}; pass the path of an audit.jsonl file")
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
