"""docs/distributed.md prints the plan code's numbers: its two tables are regenerated here and
must match byte for byte (on a mismatch the assertion shows the table to paste)."""

from __future__ import annotations

from pathlib import Path

from clinical_rlhf.models import get_model_entry
from clinical_rlhf.models.memory import GIB, weight_bytes
from clinical_rlhf.models.plan import (ARCHITECTURES, LABELS, TRAINABLE_BYTES, activation_bytes, make_plan,
                                       rollout_bytes, trainable_parameters)

DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "distributed.md"
MODELS = ("biomistral-7b", "meditron-7b", "openbiollm-8b", "medalpaca-13b", "meditron-70b", "openbiollm-70b")
CASES = (("biomistral-7b", 1, 24), ("biomistral-7b", 2, 24), ("medalpaca-13b", 1, 24), ("medalpaca-13b", 1, 40),
         ("medalpaca-13b", 4, 40), ("meditron-70b", 1, 80), ("meditron-70b", 2, 80), ("meditron-70b", 4, 80),
         ("meditron-70b", 4, 40), ("meditron-70b", 8, 40), ("meditron-70b", 1, 24), ("openbiollm-70b", 4, 80))


def _gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def terms_table() -> str:
    """Each term per GPU for one replica, s = 512 tokens, LoRA r = 16."""
    rows = ["| model | parameters | weights fp16 | int8 | nf4 | LoRA + value params | their fp32 weight, grad, "
            "Adam (16 B) | activations b=4, no checkpointing | b=4, checkpointing | KV cache b=8 |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for model in MODELS:
        entry, shape = get_model_entry(model), ARCHITECTURES[model]
        trainable = trainable_parameters(shape, 16)
        weights = [_gib(weight_bytes(entry.parameters, p, entry.embedding_parameters)) for p in ("fp16", "int8", "nf4")]
        kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * 8 * 512 * 2
        rows.append(f"| {model} | {entry.size_label} | {' | '.join(weights)} | {trainable / 1e6:.1f}M | "
                    f"{_gib(trainable * TRAINABLE_BYTES)} | {_gib(activation_bytes(shape, 4, 512, False))} | "
                    f"{_gib(activation_bytes(shape, 4, 512, True))} | {_gib(kv)} |")
    return "\n".join(rows)


def plans_table() -> str:
    """`clinical-rlhf plan --model M --gpus N --gpu-memory G` for each case, s = 512, r = 16."""
    rows = ["| model | GPUs | recommended | accelerate config | micro-batch | checkpointing | GiB per GPU |",
            "|---|---|---|---|---|---|---|"]
    for model, gpus, gib in CASES:
        plan = make_plan(get_model_entry(model), gpus=gpus, gpu_gib=gib)
        chosen = plan.recommended
        if chosen is None:
            smallest = plan.smallest(recommendable=True)
            rows.append(f"| {model} | {gpus} x {gib} GiB | does not fit (exit 1) | - | - | - | "
                        f"{_gib(smallest.total)} needed > {_gib(plan.budget)} |")
            continue
        config = chosen.strategy.config_file or "none: `clinical-rlhf train`"
        rows.append(f"| {model} | {gpus} x {gib} GiB | {LABELS[chosen.strategy.name]}, {chosen.precision} | "
                    f"{config} | {chosen.micro_batch} | {'on' if chosen.gradient_checkpointing else 'off'} | "
                    f"{_gib(chosen.total)} |")
    return "\n".join(rows)


def test_rollout_never_exceeds_training_in_the_documented_cases() -> None:
    """The tables show activations; say so only while the update, not the rollout, is the peak."""
    for model in MODELS:
        shape = ARCHITECTURES[model]
        assert rollout_bytes(shape, 4, 512) < activation_bytes(shape, 4, 512, True), model


def test_the_docs_tables_are_the_plan_codes_output() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, table in (("terms", terms_table()), ("plans", plans_table())):
        start, end = f"<!-- {name}-table:start -->\n", f"\n<!-- {name}-table:end -->"
        assert start in text and end in text, f"docs/distributed.md lacks the {name} table markers"
        documented = text.split(start, 1)[1].split(end, 1)[0]
        assert documented == table, f"docs/distributed.md {name} table is stale; paste:\n{table}"
