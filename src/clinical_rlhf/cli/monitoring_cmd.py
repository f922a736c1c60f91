"""`clinical-rlhf alerts export|list`, `clinical-rlhf report`, `clinical-rlhf tracking replay`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.errors import ConfigError

# `clinical_rlhf.monitoring` loads numpy, scipy and prometheus_client (about 1 s; its report also
# matplotlib): imported inside each command, so that `--help` and the other commands never load them.

alerts_app = typer.Typer(help="Alert rules: list them, export them for Prometheus.", no_args_is_help=True)
tracking_app = typer.Typer(help="MLflow tracking of finished runs.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

RunDirArgument = Annotated[Path, typer.Argument(help="Run directory, e.g. runs/demo.")]


@alerts_app.command("export")
def export(
    file: ConfigOption = DEFAULT_CONFIG,
    overrides: OverrideOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Rules file to write "
                                                   "(default: print to stdout).")] = None,
    tests: Annotated[Optional[Path], typer.Option("--tests", help="Also write a `promtool test rules` "
                                                  "file for the exported rules (needs --output).")] = None,
) -> None:
    """Write monitoring.alerts as a Prometheus rules file (check: promtool check rules FILE)."""
    from clinical_rlhf.monitoring.alerts import parse_rules, rule_context
    from clinical_rlhf.monitoring.prometheus_rules import (
        exportable_rules, prometheus_rules, to_yaml, write_prometheus_rules,
    )

    cfg = load(file, overrides)
    rules, context = parse_rules(cfg.monitoring.alerts), rule_context(cfg)
    if output is None:
        if tests is not None:
            raise ConfigError("--tests needs --output: the test file refers to the rules file by path")
        ready, skipped = exportable_rules(rules, context)
        typer.echo(to_yaml(prometheus_rules(ready)), nl=False)
    else:
        skipped = write_prometheus_rules(rules, context, output, tests)
        written = f"{output}" + (f" and {tests}" if tests is not None else "")
        err_console.print(f"wrote {len(rules) - len(skipped)} alert rules to {written}", highlight=False)
    for reason in skipped:
        err_console.print(f"skipped {reason}", highlight=False)


@alerts_app.command("list")
def list_rules(file: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None) -> None:
    """Show the alert rules with their thresholds resolved from the config."""
    from clinical_rlhf.monitoring.alerts import parse_rules, rule_context

    cfg = load(file, overrides)
    context = rule_context(cfg)
    table = Table("rule", "condition", "threshold", "metric key", "severity", "action")
    for rule in parse_rules(cfg.monitoring.alerts):
        threshold = rule.resolve_threshold(context)
        table.add_row(rule.name, rule.condition, "disabled" if threshold is None else f"{threshold:g}",
                      rule.key, rule.severity, rule.action)
    console.print(table)


def report(
    run_dir: RunDirArgument,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file to write "
                                                   "(default: <run dir>/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report of a run (curves, drift, alerts, evaluation)."""
    from clinical_rlhf.monitoring.report import write_report

    path = write_report(run_dir, output)
    console.print(f"report written to {path}", highlight=False)


@tracking_app.command("replay")
def replay(run_dir: RunDirArgument) -> None:
    """Send to MLflow what a run queued while its tracking store was unreachable."""
    from clinical_rlhf.monitoring.mlflow_sink import replay_pending

    sent = replay_pending(run_dir)
    console.print(f"sent {sent} queued steps of {run_dir} to MLflow", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(tracking_app, name="tracking")
    app.command("report")(report)
