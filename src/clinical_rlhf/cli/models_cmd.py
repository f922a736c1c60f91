"""`clinical-rlhf list-models [--json]` and `clinical-rlhf plan MODEL`."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
FreeOption = Annotated[
    Optional[float],
    typer.Option("--free-gib", help="Plan for this much free memory (GiB) instead of this machine's."),
]
DeviceOption = Annotated[
    str, typer.Option("--device", help="Device to plan for: auto (this machine), cuda or cpu.")
]


def _gib(num_bytes: int) -> str:
    return f"{num_bytes / 1024**3:.1f}"


def _hardware(device: str, free_gib: float | None):
    """(device_type, device name, free bytes) of this machine, or of the hypothetical one asked for."""
    from clinical_rlhf.models.hardware import memory_info, resolve_device

    if free_gib is not None:
        device_type = "cuda" if device == "auto" else device
        return device_type, f"{device_type} (assumed)", int(free_gib * 1024**3)
    info = memory_info(resolve_device(device))
    return info.device_type, info.device_name, info.free_bytes


def _entry_record(entry, device_type: str, free_bytes: int) -> dict:
    from dataclasses import asdict

    from clinical_rlhf.models.memory import select_precision

    choice = select_precision(entry, free_bytes, device_type=device_type)
    record = asdict(entry)
    record["lora_target_modules"] = list(entry.lora_target_modules)
    record["memory_bytes"] = choice.required_bytes
    record["fits"] = {p: need <= free_bytes for p, need in choice.required_bytes.items()}
    record["recommended_precision"] = choice.precision
    return record


DetailsOption = Annotated[
    bool, typer.Option("--details", help="Also print domain, best use, prompt template and LoRA targets.")
]


def list_models(as_json: JsonOption = False, details: DetailsOption = False, device: DeviceOption = "auto",
                free_gib: FreeOption = None) -> None:
    """Registered models, their facts, and the memory each needs at every precision on this machine."""
    from clinical_rlhf.models.registry import list_model_entries

    device_type, device_name, free_bytes = _hardware(device, free_gib)
    records = [_entry_record(entry, device_type, free_bytes) for entry in list_model_entries()]
    if as_json:
        hardware = {"device_type": device_type, "device_name": device_name, "free_bytes": free_bytes}
        typer.echo(json.dumps({"hardware": hardware, "models": records}, indent=2))
        return
    console.print(_memory_table(records, device_name, free_bytes))
    console.print("Training memory = weights × 1.2 + 1 GiB (LoRA PPO, small micro-batches; embeddings "
                  "stay fp32 when quantized); "
                  "see docs/models.md. `--details` for domain, use, template and LoRA targets.")
    if details:
        console.print(_details_table(records))


def _memory_table(records: list[dict], device_name: str, free_bytes: int) -> Table:
    precisions = list(records[0]["memory_bytes"])
    table = Table(title=f"Registered models: training memory in GiB on {device_name} "
                        f"({_gib(free_bytes)} GiB free; ✓ fits, ✗ does not)")
    for column in ("id", "hub id", "family", "params", "context", "license", "temp"):
        table.add_column(column, overflow="fold")
    for precision in precisions:
        table.add_column(precision, justify="right", no_wrap=True)
    table.add_column("best fit", no_wrap=True)
    for record in records:
        cells = [f"{_gib(record['memory_bytes'][p])} {'✓' if record['fits'][p] else '✗'}" for p in precisions]
        facts = (record["id"], record["hub_id"] or "(built locally)", record["family"], record["nominal_size"],
                 str(record["context_length"]), record["license"], str(record["default_temperature"]))
        table.add_row(*(escape(fact) for fact in facts), *cells, record["recommended_precision"] or "no fit")
    return table


def _details_table(records: list[dict]) -> Table:
    table = Table(title="Registered models: what they are for", show_lines=True)
    for column in ("id", "domain", "best use", "prompt template", "LoRA targets"):
        table.add_column(column, overflow="fold")
    for record in records:
        cells = (record["id"], record["domain"], record["best_use"], repr(record["prompt_template"]),
                 ", ".join(record["lora_target_modules"]))
        table.add_row(*(escape(cell) for cell in cells))  # templates hold `[INST]`, not rich markup
    return table


def plan(model: Annotated[str, typer.Argument(help="Registry id, e.g. biomistral-7b.")],
         device: DeviceOption = "auto", free_gib: FreeOption = None) -> None:
    """The best precision for MODEL on this machine, and the --set overrides that select it."""
    from clinical_rlhf.models.memory import select_precision
    from clinical_rlhf.models.registry import get_model_entry

    entry = get_model_entry(model)
    device_type, device_name, free_bytes = _hardware(device, free_gib)
    choice = select_precision(entry, free_bytes, device_type=device_type)
    console.print(f"{entry.id} ({entry.hub_id or 'built locally'}, {entry.nominal_size}) on {device_name}: "
                  f"{choice.describe()}", highlight=False)
    if not choice.fits:
        raise typer.Exit(1)
    overrides = " ".join(f"--set {o}" for o in choice.config_overrides)
    console.print(f"use: clinical-rlhf train --set model.name={entry.id} {overrides}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("list-models")(list_models)
    app.command("plan")(plan)
