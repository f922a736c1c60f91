"""`clinical-rlhf list-models [--json]` and `clinical-rlhf plan MODEL [--gpus N --gpu-memory GIB]`."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clinical_rlhf.models import plan as planning
from clinical_rlhf.models.hardware import memory_info, resolve_device
from clinical_rlhf.models.memory import select_precision
from clinical_rlhf.models.registry import get_model_entry, list_model_entries

# torch is imported only where a GPU's memory is read (`_gpu_gib`): `--help` and `list-models`
# must run without it.

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
    if free_gib is not None:
        device_type = "cuda" if device == "auto" else device
        return device_type, f"{device_type} (assumed)", int(free_gib * 1024**3)
    info = memory_info(resolve_device(device))
    return info.device_type, info.device_name, info.free_bytes


def _entry_record(entry, device_type: str, free_bytes: int) -> dict:
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
    device_type, device_name, free_bytes = _hardware(device, free_gib)
    records = [_entry_record(entry, device_type, free_bytes) for entry in list_model_entries()]
    if as_json:
        hardware = {"device_type": device_type, "device_name": device_name, "free_bytes": free_bytes}
        typer.echo(json.dumps({"hardware": hardware, "models": records}, indent=2))
        return
    table, dropped = _memory_table(records, device_name, free_bytes, console.width)
    console.print(table)
    if dropped:
        console.print(f"Left out to fit {console.width} columns: {', '.join(dropped)} (a wider terminal or "
                      f"`--json` shows them).")
    console.print("Training memory = weights × 1.2 + 1 GiB (LoRA PPO, small micro-batches; embeddings "
                  "stay fp32 when quantized); "
                  "see docs/models.md. `--details` for domain, use, template and LoRA targets.")
    if details:
        console.print(_details_table(records))


# Facts of the memory table, most needed first: each optional one is shown only if the table still
# fits the terminal (squeezed columns wrap every word into a tower of letters); the rest are named.
FACT_COLUMNS = (("id", "id"), ("params", "nominal_size"), ("hub id", "hub_id"), ("family", "family"),
                ("context", "context_length"), ("license", "license"), ("temp", "default_temperature"))
REQUIRED_FACTS = 2  # id and params always stay


def _fact(record: dict, key: str) -> str:
    value = record[key]
    return "(built locally)" if key == "hub_id" and not value else str(value)


def _table_width(columns: list[list[str]]) -> int:
    """Width of a rich box table whose columns hold these cells unwrapped (3 = padding + border)."""
    return 1 + sum(max(map(len, cells)) + 3 for cells in columns)


def _memory_table(records: list[dict], device_name: str, free_bytes: int, width: int) -> tuple[Table, list[str]]:
    """The table, and the fact columns left out so that it fits `width`."""
    precisions = list(records[0]["memory_bytes"])
    memory = [[precision] + [f"{_gib(r['memory_bytes'][precision])} ✓" for r in records] for precision in precisions]
    fitted = [["best fit"] + [r["recommended_precision"] or "no fit" for r in records]]
    facts = [[name] + [_fact(r, key) for r in records] for name, key in FACT_COLUMNS]
    chosen = list(range(REQUIRED_FACTS))
    for index in range(REQUIRED_FACTS, len(facts)):  # each optional column, most needed first, if it fits
        if _table_width([facts[i] for i in (*chosen, index)] + memory + fitted) <= width:
            chosen.append(index)
    shown = [FACT_COLUMNS[i] for i in chosen]
    table = Table(title=f"Registered models: training memory in GiB on {device_name} "
                        f"({_gib(free_bytes)} GiB free; ✓ fits, ✗ does not)")
    for name, _ in shown:
        table.add_column(name, no_wrap=True)
    for precision in precisions:
        table.add_column(precision, justify="right", no_wrap=True)
    table.add_column("best fit", no_wrap=True)
    for record in records:
        cells = [f"{_gib(record['memory_bytes'][p])} {'✓' if record['fits'][p] else '✗'}" for p in precisions]
        facts_shown = (_fact(record, key) for _, key in shown)
        table.add_row(*(escape(fact) for fact in facts_shown), *cells, record["recommended_precision"] or "no fit")
    return table, [name for name, key in FACT_COLUMNS if (name, key) not in shown]


def _details_table(records: list[dict]) -> Table:
    table = Table(title="Registered models: what they are for", show_lines=True)
    for column in ("id", "domain", "best use", "prompt template", "LoRA targets"):
        table.add_column(column, overflow="fold")
    for record in records:
        cells = (record["id"], record["domain"], record["best_use"], repr(record["prompt_template"]),
                 ", ".join(record["lora_target_modules"]))
        table.add_row(*(escape(cell) for cell in cells))  # templates hold `[INST]`, not rich markup
    return table


ModelOption = Annotated[Optional[str], typer.Option("--model", help="Registry id (same as the MODEL argument).")]
GpusOption = Annotated[
    Optional[int], typer.Option("--gpus", min=1, help="Plan for this many GPUs (one training process each).")
]
GpuMemoryOption = Annotated[
    Optional[float], typer.Option("--gpu-memory", help="Memory of each GPU in GiB (default: this machine's GPU).")
]
PrecisionOption = Annotated[
    Optional[str],
    typer.Option("--precision", help="Only consider fp16 (16-bit), int8 or nf4 (default: the best that fits)."),
]
SeqLenOption = Annotated[int, typer.Option("--seq-len", min=1, help="Tokens per sequence: prompt + answer.")]
BatchOption = Annotated[
    Optional[int],
    typer.Option("--batch", min=1, help="Micro-batch per GPU (default: the largest of 8, 4, 2, 1 that fits)."),
]
LoraOption = Annotated[int, typer.Option("--lora-r", min=1, help="LoRA rank (model_loading.lora_r).")]


def plan(model: Annotated[Optional[str], typer.Argument(help="Registry id, e.g. biomistral-7b.")] = None,
         model_option: ModelOption = None, device: DeviceOption = "auto", free_gib: FreeOption = None,
         gpus: GpusOption = None, gpu_memory: GpuMemoryOption = None, precision: PrecisionOption = None,
         seq_len: SeqLenOption = 512, batch: BatchOption = None, lora_r: LoraOption = 16) -> None:
    """The best precision for MODEL on this machine; with --gpus/--gpu-memory, the per-GPU memory
    arithmetic on N GPUs and the launch command that fits (exit 1 when nothing does)."""
    entry = get_model_entry(_model_id(model, model_option))
    if gpus is None and gpu_memory is None:
        _single_device_plan(entry, device, free_gib)
        return
    _multi_gpu_plan(entry, gpus or 1, _gpu_gib(gpu_memory, free_gib), precision, seq_len, batch, lora_r)


def _model_id(argument: str | None, option: str | None) -> str:
    if argument and option and argument.lower() != option.lower():
        raise typer.BadParameter(f"MODEL `{argument}` and --model `{option}` disagree; give one of them")
    if not (argument or option):
        raise typer.BadParameter("name the model: `clinical-rlhf plan MODEL` or `--model MODEL` (see list-models)")
    return argument or option


def _gpu_gib(gpu_memory: float | None, free_gib: float | None) -> float:
    """--gpu-memory, else --free-gib, else this machine's (first) CUDA GPU."""
    if gpu_memory is not None or free_gib is not None:
        value = gpu_memory if gpu_memory is not None else free_gib
        if value <= 0:
            raise typer.BadParameter(f"--gpu-memory must be positive, got {value}")
        return value
    import torch

    if not torch.cuda.is_available():
        raise typer.BadParameter("no CUDA GPU on this machine to read the memory of; pass --gpu-memory GIB")
    return torch.cuda.get_device_properties(0).total_memory / 1024**3


def _single_device_plan(entry, device: str, free_gib: float | None) -> None:
    device_type, device_name, free_bytes = _hardware(device, free_gib)
    choice = select_precision(entry, free_bytes, device_type=device_type)
    console.print(f"{entry.id} ({entry.hub_id or 'built locally'}, {entry.nominal_size}) on {device_name}: "
                  f"{choice.describe()}", highlight=False)
    if not choice.fits:
        raise typer.Exit(1)
    overrides = " ".join(f"--set {o}" for o in choice.config_overrides)
    console.print(f"use: clinical-rlhf train --set model.name={entry.id} {overrides}", highlight=False)


def _multi_gpu_plan(entry, gpus: int, gpu_gib: float, precision: str | None, seq_len: int, batch: int | None,
                    lora_r: int) -> None:
    if precision is not None and precision not in planning.PRECISIONS:
        raise typer.BadParameter(f"--precision must be one of {', '.join(planning.PRECISIONS)}, got {precision!r}")
    result = planning.make_plan(entry, gpus=gpus, gpu_gib=gpu_gib, seq_len=seq_len, lora_rank=lora_r,
                                precisions=(precision,) if precision else planning.PRECISIONS,
                                micro_batches=(batch,) if batch else planning.MICRO_BATCHES)
    say = lambda text="": console.print(escape(text), highlight=False, soft_wrap=True)  # noqa: E731
    say(f"{entry.id} ({entry.hub_id or 'built locally'}, {entry.size_label} parameters) on {gpus} x {gpu_gib:g} GiB "
        f"GPU{'s' if gpus > 1 else ''}: {seq_len} tokens per sequence (prompt + answer), LoRA r={lora_r}, "
        f"{planning._gib(result.budget)} GiB usable per GPU ({planning.USABLE_FRACTION:.0%})")
    chosen = result.recommended
    shown = chosen or result.smallest(recommendable=True)
    say(f"{'recommended' if chosen else 'smallest the plan recommends'}: {planning.describe_option(shown)}")
    for line in planning.arithmetic_lines(result, shown):
        say(line)
    console.print(_plan_table(planning.table_rows(result)))
    if chosen is None:
        say(planning.refusal(result))
        raise typer.Exit(1)
    say(f"launch: {planning.launch_command(result, chosen)}")
    if gpus > 1:
        memory = ("the weights are sharded across them" if chosen.strategy.shards_weights
                  else "they do not lower the memory per GPU (each holds a replica)")
        say(f"training.ppo.batch_size (the global batch) must be a multiple of {gpus}; more GPUs train each batch "
            f"faster; {memory}.")


def _plan_table(rows: list[tuple[str, ...]]) -> Table:
    table = Table(title="Per GPU, each configuration at its largest micro-batch that fits (else its smallest)")
    for column in ("configuration", "accelerate config", "micro-batch", "checkpointing", "GiB per GPU", "fits",
                   "recommended when it fits"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def register(app: typer.Typer) -> None:
    app.command("list-models")(list_models)
    app.command("plan")(plan)
