"""`clinical-rlhf reward-eval` and `clinical-rlhf reward-score`: the reward's measured quality on
the labelled sets, and the breakdown of one answer."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.reward import COMPONENTS, MultiObjectiveReward
from clinical_rlhf.reward.evaluation import (
    SPLITS,
    evaluate_hallucination,
    evaluate_ordering,
    load_hallucination_set,
    load_ordering_set,
)
from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.verdict import SafetyVerdict

console = Console()

GuardOption = Annotated[bool, typer.Option("--guard/--no-guard",
                                           help="Use the real SafetyGuard's verdicts (default: labelled/allow).")]


def _reward(config, overrides):
    cfg = load(config, overrides)
    return cfg, MultiObjectiveReward.from_config(cfg)


def _guard(cfg, use: bool):
    if not use:
        return None
    return SafetyGuard.from_config(cfg)


def reward_eval(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
                guard: GuardOption = False,
                failures: Annotated[int, typer.Option(help="Print up to this many failed pairs/items.")] = 0) -> None:
    """Ordering accuracy per component and hallucination precision/recall on the labelled sets.

    Reported per split (dev and tuned: tuned on; test: studied after its first run; holdout:
    never tuned on) and per file of reward/evalsets."""
    cfg, reward = _reward(config, overrides)
    checker = _guard(cfg, guard)
    scenarios = load_ordering_set()
    # Fits 80 columns: file names without their common prefix, each cell "accuracy passed/tests" on one line.
    table = Table(title=f"Pairwise ordering accuracy ({sum(len(s.answers) for s in scenarios)} labelled answers"
                        f"{', real guard' if checker else ''})",
                  caption="accuracy and passed/tested pairs; file rows: reward/evalsets/ordering_*.yaml")
    table.add_column("split / file", no_wrap=True)
    for component in COMPONENTS:
        table.add_column(component, justify="right", no_wrap=True)
    shown = []
    files = sorted({s.file for s in scenarios})
    groups = [(split, [s for s in scenarios if s.split == split]) for split in SPLITS]
    groups += [("all", list(scenarios))] + [(name, [s for s in scenarios if s.file == name]) for name in files]
    for name, chosen in groups:
        if not chosen:
            continue
        result = evaluate_ordering(reward, chosen, guard=checker)
        label = name.removeprefix("ordering_").removesuffix(".yaml")
        table.add_row(label, *(_accuracy_cell(result, c) for c in COMPONENTS), end_section=name in ("holdout", "all"))
        if name == "all":
            shown = result.failures[:failures]
    console.print(table)
    items = load_hallucination_set()
    hall = Table(title=f"Hallucination detection ({len(items)} labelled answers)")
    for column in ("split", "precision", "recall", "F1", "TP", "FP", "FN", "TN"):
        hall.add_column(column, justify="right")
    for split in ("dev", "holdout", "all"):
        found = evaluate_hallucination(reward, [i for i in items if split in ("all", i.split)])
        hall.add_row(split, f"{found.precision:.3f}", f"{found.recall:.3f}", f"{found.f1:.3f}",
                     *(str(n) for n in (found.true_positive, found.false_positive, found.false_negative,
                                        found.true_negative)))
        if split == "all" and failures:
            shown += [f"missed: {m}" for m in found.misses[:failures]]
            shown += [f"false alarm: {m}" for m in found.false_alarms[:failures]]
    console.print(hall)
    for line in shown:
        console.print(f"  {line}", highlight=False, markup=False)


def _accuracy_cell(result, component: str) -> str:
    tests = result.tests[component]
    return f"{result.accuracy(component):.3f} {result.passed[component]}/{tests}" if tests else "– 0/0"


def reward_score(prompt: Annotated[str, typer.Option("--prompt", "-p", help="The question.")],
                 response: Annotated[str, typer.Option("--response", "-r", help="The answer to score.")],
                 config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
                 guard: Annotated[bool, typer.Option("--guard/--no-guard",
                                                     help="Run the SafetyGuard (default) or assume allow.")] = True,
                 as_json: Annotated[bool, typer.Option("--json", help="Print the breakdown as JSON.")] = False) -> None:
    """Score one answer and print its breakdown.

    Components, weights, total, veto, matched guidelines, missing and forbidden advice,
    hallucination flags."""
    cfg, reward = _reward(config, overrides)
    checker = _guard(cfg, guard)
    verdict = checker.check(prompt, response) if checker else SafetyVerdict(action="allow")
    breakdown = reward.score(prompt, response, verdict)
    if as_json:
        typer.echo(json.dumps({"verdict": verdict.to_dict(), **breakdown.to_dict()}, indent=2))
        return
    table = Table(title=f"guard: {verdict.action}   total: {breakdown.total:+.3f}"
                        f"{'   VETOED (cost 1)' if breakdown.vetoed else ''}")
    for column in ("component", "score", "weight", "weighted"):
        table.add_column(column, justify="right")
    for name, value in breakdown.components.items():
        weight = breakdown.weights[name]
        table.add_row(name, f"{value:.3f}", f"{weight:.2f}", f"{value * weight:.3f}")
    for name, value in breakdown.penalties.items():
        table.add_row(f"penalty: {name}", f"-{value:.3f}", "", "")
    console.print(table)
    console.print(f"combination: {cfg.reward.combination}", highlight=False)
    console.print(f"matched guidelines: {', '.join(breakdown.matched_guidelines) or 'none'}", highlight=False)
    if breakdown.missing_advice:
        console.print(f"missing advice: {', '.join(breakdown.missing_advice)}", highlight=False)
    if breakdown.violated_advice:
        console.print(f"forbidden advice given: {', '.join(breakdown.violated_advice)}", highlight=False)
    for flag in (*verdict.flags, *breakdown.hallucination_flags):
        console.print(f"flag: {flag.category}/{flag.subtype} ({flag.severity}, {flag.action}): {flag.evidence}",
                      highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("reward-eval")(reward_eval)
    app.command("reward-score")(reward_score)
