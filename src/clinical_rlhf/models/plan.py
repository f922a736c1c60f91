"""Per-GPU memory of LoRA PPO on N GPUs, and the launcher configuration that fits.

`models.memory` answers "which precision fits on this one device" with a rule of thumb
(weights x 1.2 + 1 GiB). This module spells the per-GPU arithmetic out term by term, for each
way of spreading the model over GPUs, so `clinical-rlhf plan --model meditron-70b --gpus 4
--gpu-memory 80` can show it and docs/distributed.md can print the same numbers:

    frozen weights   parameters at the precision (`memory.weight_bytes`: quantized models keep
                     their embeddings in fp32); ZeRO-3/FSDP: / N, plus two layers gathered in
                     16 bit (the one computing and the one prefetched); offload: only those two
    LoRA + value     trainable parameters x 16 B: fp32 weight (peft keeps adapters in fp32),
                     fp32 gradient, AdamW's two fp32 moments; ZeRO-2: 16-bit copy + 16 B / N;
                     FSDP (= ZeRO-3 without offload): 18 B / N; offload: all in host RAM
    activations      one micro-batch of b sequences of s tokens, 16 bit, flash/SDPA attention
                     (no s x s score matrix), per layer s·b·(17·h + k·i) bytes with k = 8 for
                     gated MLPs (SwiGLU), 4 otherwise (Korthikanti et al. 2022, "Reducing
                     Activation Recomputation in Large Transformer Models", eq. 1 without the
                     attention-score and dropout terms). Gradient checkpointing keeps only each
                     layer's input (2·s·b·h) plus one layer being recomputed.
                     Plus the logits: 3 x b·s·V x 4 B (fp32 logits, their softmax for the
                     entropy and log-probs, and their gradient).
    rollout          KV cache while sampling: 2 (K and V) x layers x KV heads x head size x
                     b x s x 2 B (16 bit whatever the weights) beside the fp32 logits of every
                     step that sampling keeps for the old log-probs (b·s·V x 4 B); or those
                     logits stacked, or the reference pass's (2 x b·s·V x 4 B), whichever is
                     larger; rollout and update never overlap.
    runtime          1 GiB: CUDA context, kernels, allocator (memory.FIXED_OVERHEAD_BYTES).

    per GPU = weights + trainable + runtime + max(activations, rollout)

A plan fits when that stays under `monitoring.memory.warning_fraction` (85%) of the GPU: above
it the memory monitor starts halving the micro-batch. The shapes (layers, hidden size, heads,
MLP width, vocabulary) come from each model's published config.json; tests check that they
reproduce the registry's parameter counts. It is arithmetic for planning, not a measurement:
fragmentation, long prompts and library versions move the real figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from clinical_rlhf.config import MemoryConfig
from clinical_rlhf.models.memory import FIXED_OVERHEAD_BYTES, GIB, weight_bytes
from clinical_rlhf.models.registry import ModelEntry

HALF = 2
"""Bytes of a 16-bit value (activations, KV cache, gathered ZeRO-3 layers)."""

TRAINABLE_BYTES = 16
"""Per trainable parameter: fp32 weight + fp32 gradient + AdamW's two fp32 moments."""

SHARDED_TRAINABLE_BYTES = 18
"""Per trainable parameter under ZeRO-3/FSDP: 16-bit working copy + fp32 master, gradient, moments."""

USABLE_FRACTION = MemoryConfig().warning_fraction
"""Share of a GPU a plan may fill: the memory monitor's warning threshold (0.85 by default)."""

MICRO_BATCHES = (8, 4, 2, 1)
"""Micro-batch sizes tried, largest first (per process, `training.ppo.micro_batch_size`)."""

PRECISIONS = ("fp16", "int8", "nf4")
"""GPU precisions, best first (fp16 stands for 16-bit: bf16 where the GPU has it)."""

PRECISION_OVERRIDES = {
    "fp16": "--set model_loading.load_in_8bit=false --set model_loading.load_in_4bit=false",
    "int8": "--set model_loading.load_in_8bit=true",
    "nf4": "--set model_loading.load_in_4bit=true",
}


@dataclass(frozen=True)
class Architecture:
    """The shape of a decoder-only transformer, from its config.json."""

    family: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    positions: int = 0
    """Learned position embeddings (GPT-2, BioGPT); 0 for rotary (Llama, Mistral)."""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def gated_mlp(self) -> bool:
        return self.family in ("llama", "mistral")

    def parameter_count(self) -> int:
        """Every weight and bias of the architecture (checked against the registry)."""
        h, i, v, kv = self.hidden, self.intermediate, self.vocab, self.kv_heads * self.head_dim
        if self.family in ("llama", "mistral"):  # untied head, RMSNorm weights, no biases
            return 2 * v * h + self.layers * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h) + h
        if self.family == "gpt2":  # tied head, biases, LayerNorm weight + bias
            return v * h + self.positions * h + self.layers * (4 * h * h + 2 * h * i + 9 * h + i) + 2 * h
        if self.family == "biogpt":  # tied head, 2 extra position rows, biases everywhere
            return v * h + (self.positions + 2) * h + self.layers * (4 * h * h + 2 * h * i + 9 * h + i) + 2 * h
        raise ValueError(f"family must be llama, mistral, gpt2 or biogpt, got {self.family!r}")

    def lora_parameters(self, rank: int) -> int:
        """LoRA A and B of every adapted projection (registry.LORA_TARGETS): r x (in + out) each."""
        h, i, kv = self.hidden, self.intermediate, self.kv_heads * self.head_dim
        if self.family in ("llama", "mistral"):  # q, k, v, o, gate, up, down
            shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]
        elif self.family == "gpt2":  # c_attn (fused qkv), attention c_proj, c_fc, MLP c_proj
            shapes = [(h, 3 * h), (h, h), (h, i), (i, h)]
        else:  # biogpt: q, k, v, out_proj, fc1, fc2
            shapes = [(h, h)] * 4 + [(h, i), (i, h)]
        return self.layers * rank * sum(fan_in + fan_out for fan_in, fan_out in shapes)

    def layer_parameters(self) -> int:
        """Weights of one transformer block (what ZeRO-3/FSDP gathers at a time)."""
        return (self.parameter_count() - self.vocab * self.hidden * (2 if self.family in ("llama", "mistral") else 1)
                ) // self.layers


_LLAMA2_7B = Architecture("llama", 32, 4096, 32, 32, 11008, 32000)
_LLAMA_13B = Architecture("llama", 40, 5120, 40, 40, 13824, 32000)
_LLAMA2_70B = Architecture("llama", 80, 8192, 64, 8, 28672, 32000)
_LLAMA3_8B = Architecture("llama", 32, 4096, 32, 8, 14336, 128256)
_LLAMA3_70B = Architecture("llama", 80, 8192, 64, 8, 28672, 128256)

ARCHITECTURES: dict[str, Architecture] = {
    "clinical-demo": Architecture("gpt2", 4, 128, 4, 4, 512, 2048, positions=256),
    "biogpt": Architecture("biogpt", 24, 1024, 16, 16, 4096, 42384, positions=1024),
    "biogpt-large": Architecture("biogpt", 48, 1600, 25, 25, 6400, 57717, positions=2048),
    "biomedlm": Architecture("gpt2", 32, 2560, 20, 20, 10240, 28896, positions=1024),
    "biomistral-7b": Architecture("mistral", 32, 4096, 32, 8, 14336, 32000),
    "meditron-7b": _LLAMA2_7B,
    "meditron-70b": _LLAMA2_70B,
    "openbiollm-8b": _LLAMA3_8B,
    "openbiollm-70b": _LLAMA3_70B,
    "medalpaca-7b": _LLAMA2_7B,
    "medalpaca-13b": _LLAMA_13B,
    "pmc-llama-13b": _LLAMA_13B,
    "llama3-med42-8b": _LLAMA3_8B,
}
"""Shapes of the registered models (config.json of each Hub repository; the demo model's from
`DemoModelConfig`'s defaults)."""


@dataclass(frozen=True)
class Strategy:
    """A way to spread training over GPUs, with the accelerate config that asks for it."""

    name: str
    config_file: str | None
    """Under config/accelerate/; None: a plain `clinical-rlhf train` (one GPU)."""
    shards_trainable: bool
    shards_weights: bool
    offload: bool
    recommendable: bool
    """Whether the plan recommends it when it fits. The trainer runs every strategy (replicas:
    rl/distributed.py, FSDP: rl/sharding.py, DeepSpeed: rl/zero.py), but ZeRO-3 with parameter
    offload moves every 16-bit weight over PCIe for each forward pass, i.e. for every generated
    token: it is named as a way out, never recommended."""


STRATEGIES: dict[str, Strategy] = {
    "single": Strategy("single", None, False, False, False, True),
    "ddp": Strategy("ddp", "config/accelerate/ddp.yaml", False, False, False, True),
    "zero2": Strategy("zero2", "config/accelerate/deepspeed_zero2.yaml", True, False, False, True),
    "fsdp": Strategy("fsdp", "config/accelerate/fsdp.yaml", True, True, False, True),
    "zero3_offload": Strategy("zero3_offload", "config/accelerate/deepspeed_zero3_offload.yaml",
                              True, True, True, False),
}


@dataclass(frozen=True)
class Option:
    """One configuration and its per-GPU arithmetic, in bytes."""

    strategy: Strategy
    precision: str
    micro_batch: int
    gradient_checkpointing: bool
    gpus: int
    weights: int
    trainable: int
    activations: int
    rollout: int
    runtime: int = FIXED_OVERHEAD_BYTES
    host: int = 0
    """Host RAM the offloaded weights and optimizer need (whole machine)."""

    @property
    def total(self) -> int:
        return self.weights + self.trainable + self.runtime + max(self.activations, self.rollout)


@dataclass(frozen=True)
class Plan:
    """Every option considered for a model on `gpus` x `gpu_bytes`, and the recommended one."""

    entry: ModelEntry
    architecture: Architecture
    gpus: int
    gpu_bytes: int
    seq_len: int
    lora_rank: int
    options: tuple[Option, ...] = field(default_factory=tuple)

    @property
    def budget(self) -> int:
        return int(self.gpu_bytes * USABLE_FRACTION)

    def fits(self, option: Option) -> bool:
        return option.total <= self.budget

    @property
    def recommended(self) -> Option | None:
        """The first recommendable option that fits (options are ordered best first)."""
        return next((o for o in self.options if o.strategy.recommendable and self.fits(o)), None)

    def smallest(self, *, recommendable: bool) -> Option:
        return min((o for o in self.options if o.strategy.recommendable == recommendable), key=lambda o: o.total)


def architecture_of(entry: ModelEntry) -> Architecture:
    try:
        return ARCHITECTURES[entry.id]
    except KeyError:
        raise ValueError(f"no architecture shape for `{entry.id}`; add it to models.plan.ARCHITECTURES") from None


def trainable_parameters(architecture: Architecture, lora_rank: int) -> int:
    """LoRA adapters + the value head (hidden -> 1, with bias)."""
    return architecture.lora_parameters(lora_rank) + architecture.hidden + 1


def activation_bytes(architecture: Architecture, micro_batch: int, seq_len: int, checkpointing: bool) -> int:
    """Training forward/backward of one micro-batch: layer activations and logits (module docstring)."""
    a, s, b = architecture, seq_len, micro_batch
    per_layer = s * b * (17 * a.hidden + (8 if a.gated_mlp else 4) * a.intermediate)
    layers = a.layers * HALF * s * b * a.hidden + per_layer if checkpointing else a.layers * per_layer
    return layers + 3 * b * s * a.vocab * 4


def rollout_bytes(architecture: Architecture, micro_batch: int, seq_len: int) -> int:
    """Sampling (KV cache and kept logits) or scoring (logits) one micro-batch, whichever needs more."""
    a = architecture
    kv_cache = 2 * a.layers * a.kv_heads * a.head_dim * micro_batch * seq_len * HALF
    logits = micro_batch * seq_len * a.vocab * 4
    return max(kv_cache + logits, 2 * logits)


def option(entry: ModelEntry, architecture: Architecture, strategy: Strategy, precision: str, *, gpus: int,
           micro_batch: int, seq_len: int, lora_rank: int, checkpointing: bool) -> Option:
    """The per-GPU arithmetic of one configuration (module docstring)."""
    trainable = trainable_parameters(architecture, lora_rank)
    full_weights = weight_bytes(entry.parameters, precision, entry.embedding_parameters)
    gathered = 2 * architecture.layer_parameters() * HALF
    host = 0
    if strategy.offload:
        weights, trainable_bytes = gathered, 0
        host = full_weights + trainable * SHARDED_TRAINABLE_BYTES
    elif strategy.shards_weights:
        weights = math.ceil(full_weights / gpus) + gathered
        trainable_bytes = math.ceil(trainable * SHARDED_TRAINABLE_BYTES / gpus)
    elif strategy.shards_trainable:
        weights = full_weights
        trainable_bytes = trainable * HALF + math.ceil(trainable * TRAINABLE_BYTES / gpus)
    else:
        weights, trainable_bytes = full_weights, trainable * TRAINABLE_BYTES
    return Option(strategy, precision, micro_batch, checkpointing, gpus, weights, trainable_bytes,
                  activation_bytes(architecture, micro_batch, seq_len, checkpointing),
                  rollout_bytes(architecture, micro_batch, seq_len), host=host)


def make_plan(entry: ModelEntry, *, gpus: int, gpu_gib: float, seq_len: int = 512, lora_rank: int = 16,
              precisions: tuple[str, ...] = PRECISIONS, micro_batches: tuple[int, ...] = MICRO_BATCHES) -> Plan:
    """Every option for `entry` on `gpus` GPUs of `gpu_gib` GiB, best first.

    Runnable options (one replica per GPU) come first: precision best first, then the largest
    micro-batch, then without gradient checkpointing before with it (it recomputes each layer:
    ~1/3 more compute). The sharded strategies follow, in 16 bit (bitsandbytes weights are not
    sharded): ZeRO-2 and FSDP are thus recommended only when no replica fits (replicas need
    fewer collectives); ZeRO-3 + offload is never recommended (`Strategy.recommendable`).
    """
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    if gpu_gib <= 0:
        raise ValueError(f"gpu_gib must be positive, got {gpu_gib}")
    if seq_len < 1 or lora_rank < 1:
        raise ValueError(f"seq_len and lora_rank must be at least 1, got {seq_len} and {lora_rank}")
    architecture = architecture_of(entry)
    common = dict(gpus=gpus, seq_len=seq_len, lora_rank=lora_rank)
    replicas = STRATEGIES["single" if gpus == 1 else "ddp"]
    options = [option(entry, architecture, replicas, precision, micro_batch=micro, checkpointing=checkpointing,
                      **common)
               for precision in precisions for micro in micro_batches for checkpointing in (False, True)]
    sharded = ("zero2", "fsdp", "zero3_offload") if gpus > 1 else ("zero3_offload",)
    options += [option(entry, architecture, STRATEGIES[name], "fp16", micro_batch=micro, checkpointing=True, **common)
                for name in sharded for micro in micro_batches]
    return Plan(entry, architecture, gpus, int(gpu_gib * GIB), seq_len, lora_rank, tuple(options))


# ----------------------------------------------------------------------------- wording

PCIE_BYTES_PER_SECOND = 25e9
"""Host-to-GPU bandwidth of PCIe 4.0 x16 in practice (~25 of its 32 GB/s), for the offload estimate."""

LABELS = {"single": "one GPU", "ddp": "DDP", "zero2": "DeepSpeed ZeRO-2", "fsdp": "FSDP (ZeRO-3)",
          "zero3_offload": "DeepSpeed ZeRO-3 + CPU offload"}


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / GIB:.1f}"


def _count(number: float) -> str:
    return f"{number / 1e9:.2f}B" if number >= 1e9 else f"{number / 1e6:.1f}M"


def describe_option(option: Option) -> str:
    """`DDP, nf4, micro-batch 8, gradient checkpointing on`."""
    return (f"{LABELS[option.strategy.name]}, {option.precision}, micro-batch {option.micro_batch}, "
            f"gradient checkpointing {'on' if option.gradient_checkpointing else 'off'}")


def arithmetic_lines(plan: Plan, option: Option) -> list[str]:
    """The per-GPU terms of `option`, each with the formula that gives it (module docstring)."""
    a, entry, s, b = plan.architecture, plan.entry, plan.seq_len, option.micro_batch
    trainable = trainable_parameters(a, plan.lora_rank)
    if option.precision in ("int8", "nf4"):
        bits = {"int8": "8", "nf4": "4.5"}[option.precision]
        weights = (f"{_count(entry.embedding_parameters)} embedding parameters x 4 B + "
                   f"{_count(entry.parameters - entry.embedding_parameters)} x {bits} bit / 8")
    else:
        weights = f"{_count(entry.parameters)} parameters x 2 B"
    if option.strategy.offload:
        weights = f"2 layers gathered in 16 bit ({_count(a.layer_parameters())} each); the rest in host RAM"
    elif option.strategy.shards_weights:
        weights += f" / {option.gpus} GPUs + 2 layers gathered in 16 bit"
    if option.strategy.offload:
        states = f"{_count(trainable)} trainable parameters: weights and optimizer in host RAM"
    elif option.strategy.shards_weights:
        states = f"{_count(trainable)} trainable parameters x 18 B / {option.gpus} GPUs"
    elif option.strategy.shards_trainable:
        states = f"{_count(trainable)} trainable parameters x (2 B + 16 B / {option.gpus} GPUs)"
    else:
        states = f"{_count(trainable)} trainable parameters x 16 B (fp32 weight, gradient, 2 Adam moments)"
    mlp = 8 if a.gated_mlp else 4
    layers = (f"{a.layers} layers x 2·s·b·h (checkpointed inputs) + one layer" if option.gradient_checkpointing
              else f"{a.layers} layers x")
    rows = [
        ("frozen weights", f"{option.precision}: {weights}", option.weights),
        ("LoRA + value head", states, option.trainable),
        ("activations", f"{layers} s·b·(17h + {mlp}i) + logits 3·b·s·V x 4 B "
                        f"(s={s}, b={b}, h={a.hidden}, i={a.intermediate}, V={a.vocab})", option.activations),
        ("rollout", f"KV cache 2 x {a.layers} layers x {a.kv_heads} KV heads x {a.head_dim} x b x s x 2 B, "
                    f"+ logits b·s·V x 4 B, or 2·b·s·V x 4 B", option.rollout),
        ("runtime", "CUDA context, kernels, allocator", option.runtime),
        ("per GPU", "weights + LoRA + runtime + max(activations, rollout)", option.total),
    ]
    if option.host:
        rows.append(("host RAM", "offloaded 16-bit weights + trainable x 18 B (whole machine)", option.host))
    return [f"  {name:<18} {_gib(value):>6} GiB  {formula}" for name, formula, value in rows]


def best_per_configuration(plan: Plan) -> list[Option]:
    """For each (strategy, precision): the first option that fits, else the smallest one."""
    groups: dict[tuple[str, str], list[Option]] = {}
    for candidate in plan.options:
        groups.setdefault((candidate.strategy.name, candidate.precision), []).append(candidate)
    return [next((o for o in group if plan.fits(o)), min(group, key=lambda o: o.total)) for group in groups.values()]


def table_rows(plan: Plan) -> list[tuple[str, ...]]:
    """(configuration, accelerate config, micro-batch, checkpointing, GiB per GPU, fits, recommended when it fits)."""
    rows = []
    for candidate in best_per_configuration(plan):
        strategy = candidate.strategy
        rows.append((f"{LABELS[strategy.name]}, {candidate.precision}", strategy.config_file or "(no launcher)",
                     str(candidate.micro_batch), "on" if candidate.gradient_checkpointing else "off",
                     _gib(candidate.total) + (f" (+{_gib(candidate.host)} host)" if candidate.host else ""),
                     "yes" if plan.fits(candidate) else "no",
                     "yes" if strategy.recommendable else "no (weights over PCIe per token)"))
    return rows


def launch_command(plan: Plan, option: Option) -> str:
    """The command that trains with `option`."""
    overrides = [f"--set model.name={plan.entry.id}", PRECISION_OVERRIDES[option.precision],
                 f"--set training.ppo.micro_batch_size={option.micro_batch}",
                 f"--set model_loading.gradient_checkpointing={'true' if option.gradient_checkpointing else 'false'}",
                 f"--set model_loading.lora_r={plan.lora_rank}"]
    if option.strategy.config_file is None:
        launcher = "clinical-rlhf train"
    else:
        launcher = (f"accelerate launch --config_file {option.strategy.config_file} --num_processes {plan.gpus} "
                    f"main.py train")
    return f"{launcher} --config CONFIG {' '.join(overrides)}"


def _gpus_needed(plan: Plan, strategy: str, most: int = 64) -> int | None:
    """The fewest GPUs of this size on which `strategy` fits in 16 bit (None beyond `most`)."""
    for gpus in range(2, most + 1):
        candidate = make_plan(plan.entry, gpus=gpus, gpu_gib=plan.gpu_bytes / GIB, seq_len=plan.seq_len,
                              lora_rank=plan.lora_rank, micro_batches=(1,))
        if any(o.strategy.name == strategy and candidate.fits(o) for o in candidate.options):
            return gpus
    return None


def refusal(plan: Plan) -> str:
    """Why nothing the trainer runs fits, and what would: a bigger GPU, another precision, or a
    sharded strategy (named with its per-GPU and host figures, and said to be refused)."""
    smallest = plan.smallest(recommendable=True)
    need_gib = math.ceil(smallest.total / USABLE_FRACTION / GIB)
    parts = [f"{plan.entry.id} does not fit on {plan.gpus} x {plan.gpu_bytes / GIB:g} GiB: the smallest configuration "
             f"the plan recommends ({describe_option(smallest)}) needs {_gib(smallest.total)} GiB per GPU, more than "
             f"the {_gib(plan.budget)} GiB usable ({USABLE_FRACTION:.0%} of each GPU)"]
    if plan.gpus > 1 and not smallest.strategy.shards_weights:
        parts.append("more GPUs do not help DDP, which keeps a whole replica on every GPU")
    if not any(o.precision == "nf4" for o in plan.options):  # the plan was asked for higher precisions only
        parts.append("4-bit (--precision nf4) may fit")
    parts.append(f"it would fit on GPUs of at least {need_gib} GiB")
    gpus = _gpus_needed(plan, "fsdp")
    if gpus:
        parts.append(f"or on {gpus} such GPUs with FSDP in 16 bit (config/accelerate/fsdp.yaml)")
    offloaded = [o for o in plan.options if not o.strategy.recommendable and plan.fits(o)]
    if offloaded:
        best = offloaded[0]
        weights = weight_bytes(plan.entry.parameters, "fp16", plan.entry.embedding_parameters)
        parts.append(f"{LABELS[best.strategy.name]} would run it ({best.strategy.config_file}: {_gib(best.total)} GiB "
                     f"per GPU and {_gib(best.host)} GiB of host RAM), but every forward pass, i.e. every generated "
                     f"token, moves the {_gib(weights)} GiB of 16-bit weights over PCIe (about "
                     f"{weights / PCIE_BYTES_PER_SECOND:.0f} s at 25 GB/s): launch it yourself if that is acceptable")
    return "; ".join(parts) + "."
