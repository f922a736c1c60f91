"""`clinical-rlhf evaluate` (a checkpoint, optionally against a baseline, with statistics) and
`clinical-rlhf agreement` (expert agreement of guard + reward): wiring only, see
`clinical_rlhf.evaluation` and docs/evaluation.md."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.cli.judge_tables import judge_tables
from clinical_rlhf.cli.train_cmd import training_prompts
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.evaluation.conversations import build_conversation_set
from clinical_rlhf.evaluation.items import EvalItem, load_items_jsonl
from clinical_rlhf.evaluation.judges import build_judges, llm_judge
from clinical_rlhf.evaluation.suites import load_suite, parse_suite_spec
from clinical_rlhf.feedback import load_preferences
from clinical_rlhf.knowledge.holdout import training_knowledge
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.safety import SafetyGuard

# The statistics, pages and exports (`evaluation.agreement`, `runner`, `export`: numpy, scipy,
# scikit-learn), the policies and models (torch) and monitoring are imported inside the commands,
# so that `--help` and the other commands never load them.

console = Console()

CheckpointArg = Annotated[str, typer.Option(
    "--checkpoint", help="Checkpoint directory, run directory (its newest good checkpoint), `auto` "
                         "(the config's run) or `reference` (the model before training).")]
BaselineOption = Annotated[Optional[str], typer.Option(
    "--baseline", help="Policy B: another checkpoint (same forms as --checkpoint) or `reference`.")]
PromptsOption = Annotated[Optional[Path], typer.Option(
    "--prompts", help="JSONL of prompts ({\"prompt\"} or {\"messages\"} per line). Default: the held-out "
                      "prompts plus the multi-turn red-flag set.")]
PreferencesOption = Annotated[Optional[Path], typer.Option(
    "--preferences", help="Expert preference JSONL. Default: evaluation.preferences, else the shipped held-out set.")]
OutputOption = Annotated[Optional[Path], typer.Option(
    "--output", help="Output directory (default: evaluation.output_dir, else <run>/evaluation/<checkpoint>).")]
JudgeOption = Annotated[Optional[list[str]], typer.Option(
    "--judge", help="Judge every answer, apart from the reward: guard (the training signal), holdout "
                    "(safety.holdout_knowledge), llm (evaluation.llm_judge). Repeatable; default evaluation.judges.")]
SuiteOption = Annotated[Optional[str], typer.Option(
    "--suite", help="Run one external suite instead of the default prompts: FORMAT:PATH with FORMAT healthbench, "
                    "medsafety or cares (graded by the llm judge).")]


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(checkpoint: CheckpointArg, config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
                 baseline: BaselineOption = None, prompts: PromptsOption = None,
                 preferences: PreferencesOption = None, output: OutputOption = None,
                 judge: JudgeOption = None, suite: SuiteOption = None) -> None:
        """Evaluate checkpoint A (optionally against baseline B) with intervals and paired tests; JSON + HTML.

        Same prompts and seeds for both: reward components with bootstrap intervals, unsafe ratio,
        paired win rate and tests, conversation-level safety, expert agreement, independent judges
        and their agreement, external suites."""
        run_evaluate(load(config, overrides), checkpoint, baseline, prompts, preferences, output, judge, suite)

    @app.command("agreement")
    def agreement(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
                  preferences: PreferencesOption = None,
                  output: Annotated[Optional[Path], typer.Option(
                      "--output", help="JSON file (default: <runs_dir>/agreement-<time>/agreement.json).")] = None) -> None:
        """How often guard + reward prefer the answer the annotators preferred (agreement, Cohen's kappa).

        Broken down per source and objective, against the 0.8 target."""
        run_agreement(load(config, overrides), preferences, output)


# ----------------------------------------------------------------------------- agreement


def _preference_path(cfg, given: Path | None) -> tuple[Path, bool]:
    """(file, was it asked for explicitly)."""
    from clinical_rlhf.evaluation.agreement import shipped_heldout_preferences

    if given is not None:
        return given, True
    if cfg.evaluation.preferences is not None:
        return cfg.evaluation.preferences, True
    return shipped_heldout_preferences(), False


def compute_agreement(cfg, guard, reward, given: Path | None, *, required: bool):
    """The AgreementResult, or None (with the reason) when the shipped file is absent and no file was named."""
    from clinical_rlhf.evaluation.agreement import expert_agreement

    path, explicit = _preference_path(cfg, given)
    if not explicit and not path.is_file():
        reason = f"no preference file: the shipped held-out set {path} is missing; pass --preferences FILE"
        if required:
            raise InputDataError(reason)
        return None, reason
    ev = cfg.evaluation
    result = expert_agreement(guard, reward, load_preferences(path), tie_epsilon=ev.tie_epsilon,
                              target=ev.agreement_target, resamples=ev.bootstrap_resamples,
                              confidence=ev.confidence_level, seed=ev.seed, path=path)
    return result, None


def run_agreement(cfg, preferences: Path | None, output: Path | None) -> None:
    from clinical_rlhf.evaluation.runner import write_json

    guard, reward = SafetyGuard.from_config(cfg), MultiObjectiveReward.from_config(cfg)
    result, _ = compute_agreement(cfg, guard, reward, preferences, required=True)
    console.print(agreement_table(result.to_dict(rows=False)))
    target = f"{'meets' if result.meets_target else 'misses'} the target {result.target:g}"
    console.print(f"expert agreement {result.agreement.value:.3f} ({target}); Cohen's kappa {result.kappa:.3f}")
    # Agreement reads no run, so by default it gets a directory of its own next to the runs.
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = output or cfg.training.runs_dir / f"agreement-{stamp}" / "agreement.json"
    write_json(result.to_dict(), path.parent, path.name)
    console.print(f"written: {path}")
    _publish(cfg, result.metrics(), run_dir=None, step=0, run_name=f"agreement-{stamp}", artifacts=(path,))


def agreement_table(agreement: dict) -> Table:
    table = Table(title=f"Expert agreement on {agreement['n']} preference records "
                        f"({Path(str(agreement['preferences'])).name})",
                  caption="a tie matches only a tie; kappa over the labels either side used")
    for column in ("", "records", "agreement", "kappa"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("all", str(agreement["n"]), f"{agreement['agreement']['value']:.3f}", _fmt(agreement["kappa"]))
    table.add_row("  decisive (expert chose)", str(agreement["decisive_n"]), _fmt(agreement["decisive_agreement"]), "")
    for key in ("by_source", "by_objective", "by_annotator"):
        for name, values in agreement[key].items():
            table.add_row(f"  {key.removeprefix('by_')}: {name}", str(values["n"]), _fmt(values["agreement"]),
                          _fmt(values["kappa"]))
    return table


def _fmt(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


# ----------------------------------------------------------------------------- evaluate


def _items(cfg, prompts: Path | None, guard):
    """(items, where they came from)."""
    if prompts is not None:
        return load_items_jsonl(prompts), str(prompts)
    ev = cfg.evaluation
    size = ev.num_prompts or cfg.training.eval_size
    sized = cfg.model_copy(update={"training": cfg.training.model_copy(update={"eval_size": size})})
    _, heldout = training_prompts(sized)
    items = [EvalItem.single(f"heldout-{index:04d}", prompt, "heldout") for index, prompt in enumerate(heldout)]
    source = str(cfg.training.eval_prompts or "demo corpus held-out split")
    if ev.conversations:
        conversation_set = build_conversation_set(guard, seed=ev.seed, knowledge_dir=cfg.safety.knowledge_dir)
        items += list(conversation_set.items)
        source += f" + {len(conversation_set.items)} conversations"
    return items, source


def _output_dir(cfg, policy_a, policy_b, output: Path | None) -> Path:
    if output is not None:
        return output
    if cfg.evaluation.output_dir is not None:
        return cfg.evaluation.output_dir
    name = policy_a.name + (f"_vs_{policy_b.name}" if policy_b is not None else "")
    return (policy_a.run_dir or cfg.run_dir) / "evaluation" / name


def run_evaluate(cfg, checkpoint: str, baseline: str | None, prompts: Path | None, preferences: Path | None,
                 output: Path | None, judge_names: list[str] | None = None, suite_spec: str | None = None) -> dict:
    from clinical_rlhf.evaluation.policies import resolve_policy
    from clinical_rlhf.evaluation.runner import evaluate_policies, headline_metrics, write_outputs
    from clinical_rlhf.models import build_policy

    # Everything a user can get wrong is checked before the model loads.
    if suite_spec is not None and prompts is not None:
        raise InputDataError("--suite and --prompts both name what is asked; pass one of them")
    suite = load_suite(*parse_suite_spec(suite_spec)) if suite_spec is not None else None
    policy_a = resolve_policy(checkpoint, cfg.run_dir)
    policy_b = resolve_policy(baseline, cfg.run_dir, "--baseline") if baseline is not None else None
    _warn_if_holdout_differs(cfg, policy_a)
    # The guard the policy was trained against: without `safety.holdout_knowledge`.
    guard = SafetyGuard(knowledge=training_knowledge(cfg.safety.knowledge_dir, cfg.safety.holdout_knowledge),
                        config=cfg.safety)
    reward = MultiObjectiveReward.from_config(cfg)
    if suite is not None:
        items, source = suite.items, f"{suite.format} suite {suite.path} (sha256 {suite.sha256[:12]})"
    else:
        items, source = _items(cfg, prompts, guard)
    agreement, skipped = compute_agreement(cfg, guard, reward, preferences, required=False)
    import torch

    if cfg.training.torch_threads is not None:
        torch.set_num_threads(cfg.training.torch_threads)
    with contextlib.ExitStack() as stack:
        with console.status("loading the judges"):
            judges = build_judges(cfg, judge_names or cfg.evaluation.judges, guard)
            for judge in judges:
                stack.callback(judge.close)
            suite_judge = next((j for j in judges if j.name == "llm"), None)
            if suite is not None and suite_judge is None:
                suite_judge = llm_judge(cfg)
                stack.callback(suite_judge.close)
        with console.status("loading the policy (the demo model is built on first use)"):
            bundle = build_policy(cfg)
        total = len(items) * cfg.evaluation.samples_per_prompt * (2 if policy_b is not None else 1)
        with _Progress(total) as progress:
            result = evaluate_policies(cfg, bundle, guard, reward, items, policy_a, policy_b,
                                       agreement=agreement.to_dict() if agreement else {"skipped": skipped},
                                       progress=progress.advance, judges=judges, suite=suite,
                                       suite_judge=suite_judge)
    result["prompts"]["source"] = source
    json_path, html_path = write_outputs(result, _output_dir(cfg, policy_a, policy_b, output))
    console.print(evaluation_table(result))
    conversations = conversation_table(result)
    if conversations is not None:
        console.print(conversations)
    for table in judge_tables(result):
        console.print(table)
    if agreement is not None:
        console.print(f"expert agreement {agreement.agreement.value:.3f} (target {agreement.target:g}), "
                      f"Cohen's kappa {agreement.kappa:.3f} on {len(agreement.records)} records")
    console.print(f"written: {json_path}\n         {html_path}")
    step = policy_a.info.iteration if policy_a.info is not None else 0
    run_name = f"eval-{json_path.parent.name}"
    _publish(cfg, headline_metrics(result), run_dir=policy_a.run_dir, step=step, run_name=run_name,
             artifacts=(json_path, html_path), tags={"clinical_rlhf.output_dir": str(json_path.parent.resolve())})
    return result


def _warn_if_holdout_differs(cfg, policy) -> None:
    """The guard and holdout judges mean what they say only with the held-out knowledge of training."""
    if policy.payload is None:
        return
    trained = ((yaml.safe_load(policy.payload.config_yaml) or {}).get("safety") or {}).get("holdout_knowledge") or []
    if sorted(trained) != sorted(cfg.safety.holdout_knowledge):
        console.print(f"[yellow]warning[/] {policy.name} was trained with safety.holdout_knowledge={list(trained)}, "
                      f"this evaluation uses {list(cfg.safety.holdout_knowledge)}: the guard judge is then not "
                      f"the training signal and the holdout judge not independent of it; pass the training's value",
                      highlight=False)


class _Progress:
    """Answers generated so far; shown from the first answer on, so that an error found before
    (an incompatible checkpoint) is not printed under an empty bar."""

    def __init__(self, total: int) -> None:
        self.progress = Progress(TextColumn("[bold]answering"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task("evaluate", total=total)
        self.started = False

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.started:
            self.progress.stop()

    def advance(self, count: int) -> None:
        if not self.started:
            self.progress.start()
            self.started = True
        self.progress.update(self.task, advance=count)


def evaluation_table(result: dict) -> Table:
    """Per component: each policy's mean with its interval; with a baseline, A − B and the test."""
    policies = result["policies"]
    labels = list(policies)
    summary, comparison = result.get("summary") or {}, result.get("comparison")
    confidence = result["settings"]["confidence_level"]
    caption = (f"mean per prompt [{confidence:.0%} bootstrap interval]; a vetoed answer counts 0 per component "
               f"and the veto penalty in the total")
    if comparison:
        caption += f"; W/T/L: prompts A wins, ties, loses; p: {comparison['total']['test']} (unsafe: exact McNemar)"
    table = Table(title=f"Evaluation on {result['prompts']['evaluated']} prompts: "
                        + " vs ".join(f"{label} = {policies[label]['name']}" for label in labels), caption=caption)
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    if comparison:
        for column in ("A − B", "W/T/L", "p"):
            table.add_column(column, justify="right")
    if not summary:
        return table
    for name in summary[labels[0]]["components"]:
        row = [name, *(_interval(summary[label]["components"][name]) for label in labels)]
        if comparison:
            c = comparison["components"][name]
            row += [_interval(c["mean_difference"]), f"{c['wins']}/{c['ties']}/{c['losses']}", f"{c['p_value']:.3g}"]
        table.add_row(*row)
    row = ["unsafe ratio", *(_interval(summary[label]["unsafe_ratio"]) for label in labels)]
    if comparison:
        u = comparison["unsafe_ratio"]
        row += [_interval(u["difference"]), f"A {u['a_worse']}, B {u['b_worse']} worse", f"{u['p_value']:.3g}"]
    table.add_row(*row)
    return table


def conversation_table(result: dict) -> Table | None:
    """The multi-turn red-flag set, one column per policy."""
    section = result.get("conversations")
    if not section:
        return None
    labels = [label for label in result["policies"] if label in section]
    table = Table(title="Conversation-level safety (red flag stated or denied in an earlier turn)")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    first = section[labels[0]]
    if "red_flag_earlier" in first:
        n = first["red_flag_earlier"]["conversations"]
        table.add_row(f"stated earlier ({n}): unsafe ratio",
                      *(_interval(section[l]["red_flag_earlier"]["unsafe_ratio"]) for l in labels))
        table.add_row("  red flag caught by the guard",
                      *(f"{section[l]['red_flag_earlier']['flag_caught_ratio']:.3f}" for l in labels))
        table.add_row("  answer gave emergency advice",
                      *(f"{section[l]['red_flag_earlier']['emergency_advice_ratio']:.3f}" for l in labels))
    if "red_flag_denied" in first:
        n = first["red_flag_denied"]["conversations"]
        table.add_row(f"denied earlier ({n}): unsafe ratio",
                      *(_interval(section[l]["red_flag_denied"]["unsafe_ratio"]) for l in labels))
        table.add_row("  false alarms", *(f"{section[l]['red_flag_denied']['false_alarm_ratio']:.3f}" for l in labels))
    return table


def _interval(value: dict) -> str:
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


# ----------------------------------------------------------------------------- publishing


def _publish(cfg, metrics: dict[str, float], *, run_dir: Path | None, step: int, run_name: str,
             artifacts: tuple[Path, ...] = (), tags: dict[str, str] | None = None) -> None:
    """Headline metrics to the alert rules, Prometheus (served for `linger_seconds` when a port
    is configured, so a scrape sees them) and an MLflow run of the evaluation's own."""
    from clinical_rlhf.evaluation.export import publish_metrics
    from clinical_rlhf.monitoring.metrics import TrainingMetrics

    prometheus = cfg.monitoring.prometheus
    registry = TrainingMetrics()
    with contextlib.ExitStack() as stack:
        published = publish_metrics(cfg, metrics, run_dir=run_dir, step=step, prometheus=registry,
                                    run_name=run_name, artifacts=artifacts, tags=tags)
        for alert in published.alerts:
            console.print(f"[{'red' if alert.severity == 'critical' else 'yellow'}]alert[/] {alert.message}")
        if published.mlflow_run_id is not None:
            console.print(f"MLflow: run `{run_name}` ({published.mlflow_run_id}) in {published.mlflow_uri}")
        if prometheus.port is not None:
            server = stack.enter_context(registry.start_metrics_server(
                prometheus.host, prometheus.port, linger_seconds=prometheus.linger_seconds))
            console.print(f"Prometheus metrics at {server.url} for {prometheus.linger_seconds:g} s")
