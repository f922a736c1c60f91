"""Expert feedback: `preferences build|validate`, `train-reward` and `fit-weights` (docs/feedback.md).

    clinical-rlhf preferences validate FILE...       # every bad line, with its number, at once
    clinical-rlhf preferences build --out DIR        # the corpus-derived set (as shipped)
    clinical-rlhf preferences quarantine FILE...     # corrections the guard rejected, for review
    clinical-rlhf train-reward --config FILE         # Bradley-Terry reward model -> reward.learned_model
    clinical-rlhf fit-weights --config FILE          # objective weights the preferences imply
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.feedback import load_preferences
from clinical_rlhf.feedback.builder import build_preference_set
from clinical_rlhf.feedback.quarantine import read_quarantine
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.safety import SafetyGuard

# The reward model's training (torch) and the weight fit (numpy) are imported inside their
# commands, so that `--help` and the other commands never load them.

console = Console()
preferences_app = typer.Typer(help="Expert preference files: validate them, build the corpus-derived set.",
                              no_args_is_help=True)


@preferences_app.command("validate")
def validate(files: Annotated[list[Path], typer.Argument(help="Preference JSONL files.")]) -> None:
    """Check preference files line by line; report every bad line of every file, then fail."""
    problems = []
    for path in files:
        try:
            records = load_preferences(path)
        except InputDataError as exc:
            problems.append(str(exc))
            continue
        sources = Counter(r.source or "-" for r in records)
        console.print(f"{path}: {len(records)} pairs ({sum(r.is_tie for r in records)} ties), "
                      f"{len({r.annotator for r in records})} annotator(s); sources: "
                      + ", ".join(f"{name} {count}" for name, count in sorted(sources.items())),
                      highlight=False, soft_wrap=True)
    if problems:
        raise InputDataError(" | ".join(problems))


@preferences_app.command("build")
def build(out: Annotated[Path, typer.Option("--out", "-o", help="Directory for train.jsonl and heldout.jsonl.")],
          config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
          seed: Annotated[int, typer.Option(help="Seeds the a/b sides and the optional pairs kept.")] = 0) -> None:
    """Build the corpus-derived preference set from the `demo_model` corpus (the shipped set uses
    the defaults; `--out src/clinical_rlhf/data/preferences` regenerates it)."""
    cfg = load(config, overrides)
    built = build_preference_set(cfg.demo_model, seed=seed, knowledge_dir=cfg.safety.knowledge_dir)
    train_path, heldout_path = built.write(out)
    stats = built.stats()
    table = Table(title="preference set (synthetic judgements from the knowledge base)")
    table.add_column("source")
    table.add_column("train", justify="right")
    table.add_column("held-out", justify="right")
    for name in sorted(set(stats["train"]["sources"]) | set(stats["heldout"]["sources"])):
        table.add_row(name, str(stats["train"]["sources"].get(name, 0)), str(stats["heldout"]["sources"].get(name, 0)))
    table.add_row("all (ties)", f"{stats['train']['pairs']} ({stats['train']['ties']})",
                  f"{stats['heldout']['pairs']} ({stats['heldout']['ties']})", end_section=True)
    console.print(table)
    console.print(f"wrote {train_path} and {heldout_path}", highlight=False)


@preferences_app.command("quarantine")
def quarantine(files: Annotated[list[Path], typer.Argument(help="Quarantine JSONL files "
                                                               "(serve.feedback.quarantine_file).")],
               as_json: Annotated[bool, typer.Option("--json", help="One JSON record a line, as stored.")] = False,
               width: Annotated[int, typer.Option(min=20, help="Characters shown of each text.")] = 120) -> None:
    """List clinicians' corrections the guard rejected, with the rules that rejected them, for review.

    Nothing here is trained on. A reviewer who finds a rule wrong fixes the rule, then writes the
    pair into a preference file by hand (docs/feedback.md)."""
    records = [(path, record) for path in files for record in read_quarantine(path)]
    if as_json:
        for _, record in records:
            typer.echo(json.dumps(record, ensure_ascii=False))
        return
    rules = Counter()
    for path, record in records:
        verdict = record.get("verdict") or {}
        flags = [f"{flag.get('category')}/{flag.get('rule_id')}" for flag in verdict.get("flags") or []]
        rules.update(flags)
        console.print(f"[bold]{record.get('id')}[/bold]  {record.get('created')}  annotator "
                      f"{record.get('annotator')}  ({path})", highlight=False, soft_wrap=True)
        console.print(f"  guard: {verdict.get('action')} ({verdict.get('reason_code')}): "
                      f"{', '.join(flags) or 'no flags'}", highlight=False, soft_wrap=True, markup=False)
        for label, key in (("question", "prompt"), ("correction", "corrected_answer"), ("served", "served_answer")):
            console.print(f"  {label}: {_excerpt(record.get(key), width)}", highlight=False, soft_wrap=True,
                          markup=False)
    summary = ", ".join(f"{rule} {count}" for rule, count in rules.most_common()) or "none"
    console.print(f"{len(records)} quarantined correction(s); rules: {summary}", highlight=False, soft_wrap=True,
                  markup=False)


def _excerpt(text: object, width: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def train_reward(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None) -> None:
    """Train the Bradley-Terry reward model (`reward_model:` section); report held-out accuracy."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see build-demo-model
    from clinical_rlhf.reward.reward_model_training import train_reward_model

    cfg = load(config, overrides)
    columns = (TextColumn("reward model"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=None, loss="-")

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, loss=f"{loss:.3f}")

        report = train_reward_model(cfg, progress=on_step, on_phase=lambda text: progress.console.print(text))
    table = Table(title=f"reward model: held-out accuracy {report.heldout_accuracy:.3f} "
                        f"({report.heldout_pairs} pairs)",
                  caption=f"ties skipped: {report.ties_skipped['train']} train, {report.ties_skipped['heldout']} "
                          f"held-out; {report.truncated} sequences cut to reward_model.max_length")
    table.add_column("held-out source")
    table.add_column("pairs", justify="right")
    table.add_column("accuracy", justify="right")
    for name, entry in report.per_source.items():
        table.add_row(name, str(entry["pairs"]), f"{entry['accuracy']:.3f}")
    table.add_row("all", str(report.heldout_pairs), f"{report.heldout_accuracy:.3f}", end_section=True)
    console.print(table)
    console.print(f"train: {report.train_pairs} pairs, {report.steps} steps, last-epoch loss {report.train_loss:.3f} "
                  f"(accuracy {report.train_accuracy:.3f}); held-out loss {report.heldout_loss:.3f}; "
                  f"{report.seconds:.0f} s", highlight=False)
    console.print(f"wrote {report.directory}; use it with --set reward.learned_model={report.directory} "
                  f"--set reward.learned_weight=0.2", highlight=False)


TrainFileOption = Annotated[Path | None, typer.Option(
    "--train", help="Preferences to fit on (default: reward_model.train_file, else the shipped set).")]
HeldoutFileOption = Annotated[Path | None, typer.Option(
    "--heldout", help="Preferences for the held-out agreement (default: reward_model.heldout_file, else shipped).")]
GuardOption = Annotated[bool, typer.Option(
    "--guard/--no-guard", help="Leave out pairs the SafetyGuard vetoes an answer of (default), or score every answer.")]
BootstrapOption = Annotated[int, typer.Option(help="Bootstrap resamples for the intervals (0: none).")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="Also write the fit as JSON here.")]


def fit_weights(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
                train: TrainFileOption = None, heldout: HeldoutFileOption = None, guard: GuardOption = True,
                bootstrap: BootstrapOption = 200, as_json: JsonOption = None) -> None:
    """Fit the four objectives' weights to expert preferences and compare them with the config's."""
    from clinical_rlhf.feedback.objective_weights import (
        OBJECTIVES,
        agreement,
        component_differences,
        fit_objective_weights,
        paste_weights,
    )
    from clinical_rlhf.reward.reward_model_training import preference_paths

    cfg = load(config, overrides)
    default_train, default_heldout = preference_paths(cfg)
    train_path, heldout_path = train or default_train, heldout or default_heldout
    train_records, heldout_records = load_preferences(train_path), load_preferences(heldout_path)
    # The rule-based objectives only: the learned component is what is being compared against.
    reward = MultiObjectiveReward(cfg.reward.model_copy(update={"learned_model": None}))
    checker = None
    if guard:
        checker = SafetyGuard.from_config(cfg)
    fitted, held = (component_differences(records, reward, checker) for records in (train_records, heldout_records))
    fit = fit_objective_weights(fitted.x, bootstrap=bootstrap, seed=cfg.reward_model.seed)
    current = cfg.reward.weights.model_dump()
    for split, data in (("train", fitted), ("heldout", held)):
        fit.agreement[split] = {"learned": agreement(data.x, [fit.weights[o] for o in OBJECTIVES]),
                                "configured": agreement(data.x, [current[o] for o in OBJECTIVES]), "pairs": len(data.x)}
    labels = fitted.label_agreement()
    table = Table(title=f"objective weights from {fit.pairs} expert preferences ({train_path.name})",
                  caption=f"left out: {fitted.ties} ties, {fitted.vetoed} pairs with a vetoed answer"
                          f"{' (the veto decides them)' if guard else ''}")
    for column in ("objective", "config", "learned", f"{fit.confidence:.0%} CI", "coef (se)", "differ", "label agr."):
        table.add_column(column, justify="left" if column == "objective" else "right")
    for name in OBJECTIVES:
        low, high = fit.intervals[name]
        share, count = labels[name]
        table.add_row(name, f"{current[name]:.2f}", f"{fit.weights[name]:.2f}", f"{low:.2f}-{high:.2f}",
                      f"{fit.coefficients[name]:+.1f} ({fit.standard_errors[name]:.1f})",
                      str(fit.pairs_differing[name]), f"{share:.2f} ({count})" if count else "-")
    console.print(table)
    console.print("differ: pairs whose two answers score differently on the objective; label agr.: share of the "
                  "experts' per-objective labels the objective's score agrees with", highlight=False)
    for split in ("train", "heldout"):
        entry = fit.agreement[split]
        console.print(f"agreement with the {split} preferences ({entry['pairs']} pairs): configured weights "
                      f"{entry['configured']:.3f}, learned weights {entry['learned']:.3f}", highlight=False)
    if fit.dropped:
        console.print(f"weight 0 (negative coefficient): {', '.join(fit.dropped)}", highlight=False)
    for name in fit.undetermined:
        console.print(f"{name}: its scores differ in only {fit.pairs_differing[name]} of {fit.pairs} pairs, so "
                      f"these preferences do not determine its weight; the snippet keeps the configured one",
                      highlight=False)
    if fit.agreement["train"]["learned"] == 1.0:
        console.print("the training pairs are perfectly separable: the weights are the max-margin direction "
                      "and their scale is set by the L2 penalty", highlight=False)
    snippet = paste_weights(fit.weights, current, fit.undetermined)
    if as_json is not None:
        as_json.parent.mkdir(parents=True, exist_ok=True)
        payload = fit.to_dict() | {
            "configured": current, "snippet": snippet, "train_file": str(train_path), "heldout_file": str(heldout_path),
            "guard": guard, "left_out": {"ties": fitted.ties, "vetoed": fitted.vetoed},
            "label_agreement": {name: {"agreement": share, "pairs": count} for name, (share, count) in labels.items()}}
        as_json.write_text(json.dumps(_finite(payload), indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {as_json}", highlight=False)
    console.print("reward.weights to paste into a config:", highlight=False)
    typer.echo("reward:\n  weights:\n" + "".join(f"    {name}: {snippet[name]:.2f}\n" for name in OBJECTIVES), nl=False)


def _finite(value):
    """NaN (an objective no label judged, intervals without bootstrap) as JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def register(app: typer.Typer) -> None:
    app.add_typer(preferences_app, name="preferences")
    app.command("train-reward")(train_reward)
    app.command("fit-weights")(fit_weights)
