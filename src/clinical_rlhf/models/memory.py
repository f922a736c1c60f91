"""Memory needed to RLHF-train a model at each precision, and the best precision that fits.

The estimate is derived from the parameter count, never typed per model:

    required = weights × (1 + OVERHEAD_FRACTION) + FIXED_OVERHEAD_BYTES
    weights  = parameters × bits_per_parameter / 8                           (fp32, fp16)
    weights  = embeddings × 4 + (parameters − embeddings) × bits / 8         (int8, nf4)

- bits per parameter: fp32 32, fp16/bf16 16, int8 8 (LLM.int8 keeps a few outlier columns
  in 16 bit, small enough to ignore), nf4 4.5 (4-bit NF4 plus double-quantized block
  constants ≈ 4.13 bits, rounded up for the norms and biases left unquantized).
- embeddings (input embedding + LM head, from the registry): bitsandbytes does not quantize
  them and the k-bit training preparation keeps them in fp32 (4 bytes), which for a
  128k-token vocabulary (Llama 3) is several GB.
- OVERHEAD_FRACTION (20%) covers what scales with the model during LoRA PPO with small
  micro-batches: LoRA weights with their AdamW moments, the value head, activations of one
  micro-batch, and the KV cache while sampling.
- FIXED_OVERHEAD_BYTES (1 GiB) covers the CUDA context, kernels and allocator fragmentation
  (on CPU: the Python process, torch and the tokenizer).

It is an estimate for planning (which precision, which GPU), not a guarantee: long
sequences or large micro-batches need more; `monitoring.memory` watches the real figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024**3

BITS_PER_PARAMETER: dict[str, float] = {"fp32": 32.0, "fp16": 16.0, "int8": 8.0, "nf4": 4.5}
"""Storage cost of one frozen base weight at each precision (see the module docstring)."""

OVERHEAD_FRACTION = 0.20
"""Share of the weight memory added for adapters, optimizer state, activations, KV cache."""

FIXED_OVERHEAD_BYTES = 1 * GIB
"""Memory used regardless of model size (CUDA context, kernels, fragmentation)."""

PRECISION_ORDER: dict[str, tuple[str, ...]] = {
    # Best first. GPUs train in 16 bit; on CPU half precision is slow and lossy, so fp32.
    "cuda": ("fp16", "int8", "nf4"),
    "mps": ("fp16", "int8", "nf4"),
    "cpu": ("fp32", "int8", "nf4"),
}

_CONFIG_OVERRIDES: dict[str, tuple[str, ...]] = {
    "fp32": ("model.dtype=float32", "model_loading.load_in_8bit=false", "model_loading.load_in_4bit=false"),
    "fp16": ("model.dtype=auto", "model_loading.load_in_8bit=false", "model_loading.load_in_4bit=false"),
    "int8": ("model_loading.load_in_8bit=true", "model_loading.load_in_4bit=false"),
    "nf4": ("model_loading.load_in_4bit=true", "model_loading.load_in_8bit=false"),
}


QUANTIZED = ("int8", "nf4")
"""Precisions whose embeddings stay in fp32 while everything else is quantized."""


def weight_bytes(parameters: int, precision: str, embedding_parameters: int = 0) -> int:
    """Bytes of the frozen base weights alone at `precision` (module docstring)."""
    try:
        bits = BITS_PER_PARAMETER[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {tuple(BITS_PER_PARAMETER)}, got {precision!r}") from None
    if precision in QUANTIZED:
        return int(embedding_parameters * 4 + (parameters - embedding_parameters) * bits / 8)
    return int(parameters * bits / 8)


def training_bytes(parameters: int, precision: str, embedding_parameters: int = 0) -> int:
    """Estimated bytes to run LoRA PPO on the model at `precision` (module docstring)."""
    weights = weight_bytes(parameters, precision, embedding_parameters)
    return int(weights * (1 + OVERHEAD_FRACTION)) + FIXED_OVERHEAD_BYTES


@dataclass(frozen=True)
class PrecisionChoice:
    """The outcome of `select_precision`: the best precision that fits, or why none does."""

    precision: str | None
    """Chosen precision (fp32/fp16/int8/nf4), or None when nothing fits."""
    free_bytes: int
    """Memory that was available."""
    device_type: str
    """cuda, mps or cpu."""
    required_bytes: dict[str, int] = field(default_factory=dict)
    """Estimated need at every precision considered, best first."""

    @property
    def fits(self) -> bool:
        return self.precision is not None

    @property
    def config_overrides(self) -> tuple[str, ...]:
        """`--set` overrides that select this precision (empty when nothing fits)."""
        return _CONFIG_OVERRIDES[self.precision] if self.precision else ()

    def describe(self) -> str:
        """One sentence for the CLI: what was chosen, or the numbers that rule every option out."""
        if self.precision:
            need = self.required_bytes[self.precision] / GIB
            return (f"{self.precision} fits: needs ~{need:.1f} GiB of {self.free_bytes / GIB:.1f} GiB "
                    f"free {self.device_type} memory")
        smallest = min(self.required_bytes, key=self.required_bytes.__getitem__)
        need = self.required_bytes[smallest] / GIB
        return (f"does not fit: even {smallest} needs ~{need:.1f} GiB but only "
                f"{self.free_bytes / GIB:.1f} GiB of {self.device_type} memory is free; use a smaller "
                f"model or a machine with more memory")


def select_precision(entry_or_parameters, free_bytes: int, *, device_type: str = "cuda") -> PrecisionChoice:
    """The best precision at which the model trains within `free_bytes`.

    `entry_or_parameters` is a `ModelEntry` or a bare parameter count (then embeddings are
    not counted apart). Precisions are tried best first (GPU: fp16, int8, nf4; CPU: fp32,
    int8, nf4).
    """
    parameters = getattr(entry_or_parameters, "parameters", entry_or_parameters)
    embeddings = getattr(entry_or_parameters, "embedding_parameters", 0)
    if device_type not in PRECISION_ORDER:
        raise ValueError(f"device_type must be one of {tuple(PRECISION_ORDER)}, got {device_type!r}")
    required = {p: training_bytes(parameters, p, embeddings) for p in PRECISION_ORDER[device_type]}
    chosen = next((p for p, need in required.items() if need <= free_bytes), None)
    return PrecisionChoice(precision=chosen, free_bytes=int(free_bytes), device_type=device_type,
                           required_bytes=required)
