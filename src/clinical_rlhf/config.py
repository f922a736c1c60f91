"""The one configuration schema: every YAML key, its default, its unit and why.

Loading order: YAML file -> ``--set a.b=c`` overrides -> validation, once, at the entry
point. The result is a frozen tree; code receives the section it needs, never a dict.
Unknown keys are rejected with their dotted path so that a typo cannot silently fall
back to a default.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from clinical_rlhf.errors import ConfigError


class _Section(BaseModel):
    """Base of every section: frozen, strict about unknown keys, documented by docstrings."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, protected_namespaces=()
    )


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]


# ----------------------------------------------------------------------------- model


class ModelConfig(_Section):
    name: str = "clinical-demo"
    """Registry id (`clinical-rlhf list-models`), e.g. `biomistral-7b`. Default: the local demo
    model, so that a fresh clone trains without any download."""

    path: Path | None = None
    """Local directory holding a transformers checkpoint. When set it is loaded instead of the
    registry's Hub id (the registry entry still supplies template, sampling and LoRA targets)."""

    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin; `None` takes the default branch."""

    device: Literal["auto", "cuda", "cpu", "mps"] = "auto"
    """Where the policy runs. `auto` picks CUDA, then Apple MPS, then CPU."""

    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Weight dtype for unquantized layers. `auto`: bfloat16 on GPUs that support it, float16 on
    other GPUs, float32 on CPU (half precision is slow and lossy on CPU)."""

    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """Attention kernel. `auto`: flash_attention_2 when installed on a supported GPU, else sdpa
    when the architecture supports it, else eager."""

    trust_remote_code: bool = False
    """Run model code shipped in a Hub repository. Off by default: it executes arbitrary code."""


class ModelLoadingConfig(_Section):
    load_in_4bit: bool = False
    """Quantize the frozen base to 4 bits with bitsandbytes (QLoRA). Cuts base weights ~4x."""

    load_in_8bit: bool = False
    """Quantize the frozen base to 8 bits (LLM.int8). Mutually exclusive with `load_in_4bit`."""

    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type. NF4 is information-optimal for normally distributed weights (QLoRA paper)."""

    bnb_4bit_compute_dtype: Literal["float32", "float16", "bfloat16"] = "bfloat16"
    """Dtype the 4-bit weights are dequantized to for matmuls."""

    bnb_4bit_use_double_quant: bool = True
    """Quantize the quantization constants too: saves ~0.4 bit/parameter at no measurable cost."""

    use_lora: bool = True
    """Train LoRA adapters instead of all weights. Also gives the reference policy for free:
    the same model with the adapter disabled."""

    lora_r: PositiveInt = 16
    """LoRA rank. 8-16 is the usual range for RLHF on 7B models."""

    lora_alpha: PositiveInt = 32
    """LoRA scaling numerator (update scaled by alpha / r); 2 x r is the common choice."""

    lora_dropout: Probability = 0.05
    """Dropout on the LoRA input path."""

    target_modules: tuple[str, ...] | None = None
    """Module names that receive adapters. `None` takes the registry's list for the architecture."""

    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: ~30% slower, much less activation memory."""

    shared_value_base: bool = True
    """Put the value head on the policy backbone (one model in memory) instead of a separate
    value model. Halves memory; the analysis notes possible interference, measured in training."""

    @model_validator(mode="after")
    def _one_quantization(self) -> ModelLoadingConfig:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are mutually exclusive; set one to false")
        return self


# ----------------------------------------------------------------------------- demo model


CACHE_ENV = "CLINICAL_RLHF_CACHE"


def default_cache_dir() -> Path:
    """Where built models are kept across clones and working directories: `$CLINICAL_RLHF_CACHE`,
    else `$XDG_CACHE_HOME/clinical-rlhf`, else `~/.cache/clinical-rlhf` (the layout of the
    Hugging Face cache, so one build serves every checkout)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "clinical-rlhf"


class DemoModelConfig(_Section):
    """The locally built demo model (`clinical-rlhf build-demo-model`)."""

    cache_dir: Path = Field(default_factory=lambda: default_cache_dir() / "demo-model")
    """Where the trained tokenizer and SFT model are written and looked for. Default: the user
    cache (`default_cache_dir() / "demo-model"`, e.g. `~/.cache/clinical-rlhf/demo-model`), so the
    model is built once whatever the current directory; a stale build (other settings or corpus)
    is rebuilt. A relative path in a config file is read against the file's directory."""

    architecture: Literal["gpt2", "llama"] = "gpt2"
    """Architecture family of the demo model, built from its transformers config class."""

    vocab_size: PositiveInt = 2048
    """Size of the byte-level BPE vocabulary trained on the clinical corpus."""

    n_layer: PositiveInt = 4
    """Transformer blocks."""

    n_embd: PositiveInt = 128
    """Hidden size."""

    n_head: PositiveInt = 4
    """Attention heads."""

    context_length: PositiveInt = 256
    """Maximum sequence length in tokens (prompt + answer)."""

    corpus_size: Annotated[int, Field(ge=200)] = 2400
    """Prompt/answer pairs generated from the knowledge base (before the held-out split)."""

    heldout_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.1
    """Fraction of the corpus kept out of SFT for evaluation and RL prompts."""

    unsafe_fraction: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.25
    """Fraction of answers written deliberately unsafe (labelled), as in real web text."""

    sft_epochs: PositiveInt = 3
    """Supervised passes over the training split."""

    sft_learning_rate: Annotated[float, Field(gt=0.0)] = 3e-3
    """Peak AdamW learning rate for SFT (warm-up, cosine decay). A ~1M-parameter model from
    scratch tolerates a large one: 3e-3 reached held-out answer loss 1.3 in the 3-minute
    budget where 1e-3 stayed at 3.2."""

    sft_batch_size: PositiveInt = 16
    """Sequences per SFT step. 16 rather than 32: at a fixed time budget a tiny model gains
    more from twice the optimizer steps than from less noisy gradients."""

    max_build_seconds: PositiveInt = 180
    """Upper bound on the build; training stops early (and says so) when it is reached."""

    seed: int = 0
    """Seeds the corpus, the weight init and the batch order of the build, so the same config
    rebuilds the same model. Separate from `training.seed`: a new RL seed must not rebuild it."""


# ----------------------------------------------------------------------------- training


class PPOConfig(_Section):
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-5
    """AdamW learning rate for adapters and value head. 1e-5 suits 7B LoRA; the demo uses more."""

    lr_schedule: Literal["constant", "linear"] = "constant"
    """Learning-rate schedule over iterations: `linear` decays it to 0 at `num_iterations`.
    Constant by default: PPO runs are often extended or resumed past their first horizon."""

    batch_size: PositiveInt = 8
    """Prompts per iteration (rollout batch)."""

    samples_per_prompt: PositiveInt = 1
    """Answers sampled per prompt. Group-normalised advantages need at least 2."""

    mini_batch_size: PositiveInt = 8
    """Rollout samples per optimizer step."""

    micro_batch_size: PositiveInt = 8
    """Samples per forward/backward pass; mini_batch_size / micro_batch_size = accumulation steps.
    Halved automatically on an out-of-memory error."""

    ppo_epochs: PositiveInt = 4
    """Passes over each rollout batch."""

    clip_range: Annotated[float, Field(gt=0.0)] = 0.2
    """Policy ratio clip epsilon (Schulman et al. 2017)."""

    clip_range_value: Annotated[float, Field(gt=0.0)] = 0.2
    """Value prediction clip around the rollout values."""

    vf_coef: Annotated[float, Field(ge=0.0)] = 0.1
    """Weight of the value loss in the combined loss (shared backbone)."""

    entropy_coef: Annotated[float, Field(ge=0.0)] = 0.0
    """Entropy bonus weight. Entropy is always logged; the bonus is off by default."""

    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    """Global gradient-norm clip."""

    gamma: Probability = 1.0
    """Discount. 1.0: one answer is one episode and its reward arrives at the last token."""

    lam: Probability = 0.95
    """GAE lambda."""

    advantage_estimator: Literal["gae", "group"] = "gae"
    """`gae` uses the value head; `group` normalises rewards over the samples of one prompt
    (GRPO-style, critic-free)."""

    whiten_advantages: bool = True
    """Normalise advantages to zero mean, unit variance over the batch."""

    reward_normalization: bool = False
    """Scale scalar rewards by a running standard deviation."""

    kl_estimator: Literal["k1", "k3"] = "k1"
    """Per-token KL estimate (Schulman, "Approximating KL divergence"): k1 = log ratio,
    k3 = (r - 1) - log r, unbiased and non-negative."""

    init_kl_coef: Annotated[float, Field(ge=0.0)] = 0.05
    """Initial beta of the KL penalty against the reference policy."""

    adaptive_kl: bool = True
    """Adapt beta towards `kl_target` (Ziegler et al. 2019) instead of keeping it fixed."""

    kl_target: Annotated[float, Field(gt=0.0)] = 6.0
    """Target sequence-level KL (nats) for the adaptive controller."""

    kl_horizon: PositiveInt = 10000
    """Horizon (samples) of the adaptive KL controller."""

    target_kl: Annotated[float, Field(gt=0.0)] | None = 0.1
    """Stop the current PPO epoch loop when the approximate KL to the rollout policy exceeds this.
    `None` disables the early stop."""

    max_new_tokens: PositiveInt = 64
    """Answer length limit in tokens."""

    temperature: Annotated[float, Field(gt=0.0)] | None = None
    """Sampling temperature; `None` takes the registry's default for the model."""

    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Nucleus sampling. 1.0 keeps PPO's log-probs those of the sampled distribution."""

    missing_eos_penalty: Annotated[float, Field(ge=0.0)] = 1.0
    """Subtracted from the scalar reward of an answer that hit `max_new_tokens` without EOS."""

    @model_validator(mode="after")
    def _consistent_batches(self) -> PPOConfig:
        """Settings that are each valid but do not fit together, named before the model loads."""
        if self.advantage_estimator == "group" and self.samples_per_prompt < 2:
            raise ValueError(f"training.ppo.advantage_estimator: group compares the answers of one prompt, so "
                             f"training.ppo.samples_per_prompt must be at least 2 (it is {self.samples_per_prompt}); "
                             f"raise it, or use advantage_estimator: gae")
        rollout = self.batch_size * self.samples_per_prompt
        if self.mini_batch_size > rollout:
            raise ValueError(f"training.ppo.mini_batch_size ({self.mini_batch_size}) is larger than one rollout, "
                             f"training.ppo.batch_size x samples_per_prompt ({rollout}); set it to at most {rollout}")
        if self.micro_batch_size > self.mini_batch_size:
            raise ValueError(f"training.ppo.micro_batch_size ({self.micro_batch_size}) is larger than "
                             f"training.ppo.mini_batch_size ({self.mini_batch_size}); a micro-batch is a slice of "
                             f"a mini-batch: set it to at most {self.mini_batch_size}")
        return self


class LagrangianConfig(_Section):
    """Safety as a constraint (Safe RLHF, Dai et al. 2023): maximise reward subject to
    E[cost] <= cost_threshold, with a learned multiplier."""

    enabled: bool = True
    """Weigh the cost advantage into the policy objective."""

    init_multiplier: Annotated[float, Field(ge=0.0)] = 1.0
    """Initial lambda (log-parameterised internally, so it stays non-negative)."""

    learning_rate: Annotated[float, Field(gt=0.0)] = 0.05
    """Step size of the multiplier update on log lambda."""

    max_multiplier: Annotated[float, Field(gt=0.0)] = 10.0
    """Cap on lambda, so one bad batch cannot drown the reward signal."""

    cost_threshold: Probability = 0.0
    """Allowed expected cost (unsafe ratio) per answer. 0: every veto pushes lambda up."""


class CheckpointConfig(_Section):
    save_frequency: PositiveInt = 5
    """Iterations between checkpoints."""

    keep_last: PositiveInt = 3
    """Regular checkpoints kept (the best and emergency ones are kept besides)."""


class RollbackConfig(_Section):
    enabled: bool = True
    """Restore the best checkpoint when safety degrades."""

    window: PositiveInt = 3
    """Iterations averaged when comparing the unsafe ratio with the best checkpoint's."""

    margin: Probability = 0.15
    """Rollback when the window's unsafe ratio exceeds the best checkpoint's by this much."""

    lr_factor: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    """Learning rate multiplier applied after a rollback."""

    kl_coef_factor: Annotated[float, Field(ge=1.0)] = 2.0
    """KL beta multiplier applied after a rollback."""


class DPOConfig(_Section):
    """`training.algorithm: dpo`: Direct Preference Optimization on expert preferences (docs/dpo.md)."""

    beta: Annotated[float, Field(gt=0.0)] = 0.1
    """Strength of DPO's implicit KL tie to the reference (the disabled adapter): larger keeps the
    policy closer to it. 0.1 is the DPO paper's value (Rafailov et al. 2023) and TRL's default."""

    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    """`sigmoid`: the DPO loss -log sigmoid(beta * margin) on summed answer log-probs; `ipo`:
    (margin - 1/(2 beta))^2 on per-token mean log-probs (Azar et al. 2023), which stops at a
    finite margin instead of pushing it without bound when the same pairs are seen again."""

    label_smoothing: Annotated[float, Field(ge=0.0, lt=0.5)] = 0.0
    """Assumed share of preference labels that are flipped (conservative DPO, Mitchell 2023):
    0 trusts every label; 0.1 for a noisy annotator pool. `sigmoid` only."""

    learning_rate: Annotated[float, Field(gt=0.0)] = 5e-5
    """AdamW learning rate of the LoRA adapter. Higher than the 5e-7 to 1e-6 used for full-weight
    DPO: a LoRA update is low-rank and starts from zero, and 5e-5 is the usual LoRA DPO rate."""

    lr_schedule: Literal["constant", "linear"] = "linear"
    """`linear` decays the rate to zero at the last step (TRL's default), `constant` keeps it."""

    epochs: PositiveInt = 1
    """Passes over the training pairs. 1: DPO overfits a preference set quickly (the held-out
    accuracy falls while the training margin keeps growing); raise it for a few hundred pairs."""

    batch_size: PositiveInt = 16
    """Preference pairs per optimizer step."""

    micro_batch_size: PositiveInt = 4
    """Pairs per forward/backward pass (chosen and rejected go through together: 2x sequences);
    gradients accumulate up to `batch_size`. Halved automatically on out-of-memory."""

    max_grad_norm: Annotated[float, Field(gt=0.0)] = 1.0
    """Global gradient-norm clip per optimizer step."""

    max_length: PositiveInt = 512
    """Most tokens of prompt + answer (also capped by the model's context). A longer pair keeps
    the end of its prompt (at most half of the length) and cuts both answers to what is left."""

    train_file: Path | None = None
    """JSONL of expert preferences to train on (docs/feedback.md). `None`: the shipped set,
    `clinical_rlhf/data/preferences/train.jsonl`. Ties are skipped (they have no winner)."""

    heldout_file: Path | None = None
    """JSONL of held-out preferences for the preference accuracy before, during and after
    training. `None`: the shipped `clinical_rlhf/data/preferences/heldout.jsonl`."""

    eval_frequency: PositiveInt | None = 10
    """Optimizer steps between held-out preference evaluations (`dpo/eval/*`); `None`: only
    before and after training. One no-grad pass over the held-out pairs each time."""

    @model_validator(mode="after")
    def _micro_within_batch(self) -> DPOConfig:
        if self.micro_batch_size > self.batch_size:
            raise ValueError(f"training.dpo.micro_batch_size ({self.micro_batch_size}) is larger than "
                             f"training.dpo.batch_size ({self.batch_size}); a micro-batch is a slice of a step's "
                             f"pairs: set it to at most {self.batch_size}")
        return self


class TrainingConfig(_Section):
    algorithm: Literal["ppo", "dpo"] = "ppo"
    """Training algorithm: `ppo` (constrained PPO with the guard's vetoes in the loop, docs/training.md)
    or `dpo` (Direct Preference Optimization on expert preference pairs, `training.dpo`, docs/dpo.md)."""

    run_name: str = "demo"
    """Name of the run directory under `runs_dir`."""

    runs_dir: Path = Path("runs")
    """Parent of every run directory (checkpoints, audit log, tracking store, report)."""

    seed: int = 42
    """Seeds python, numpy and torch (CUDA too)."""

    deterministic: bool = False
    """Call torch.use_deterministic_algorithms(True): reproducible on GPU at a speed cost."""

    torch_threads: PositiveInt | None = None
    """CPU threads of torch's intra-op pool during training (`torch.set_num_threads`); `None`
    keeps torch's default (one per core). Small models train faster on 1: their matrices are too
    small to split, and on a busy machine the extra threads spin waiting for a core (10x slower
    measured on a shared 2-core CPU). Float sums depend on it, so a resumed CPU run repeats an
    uninterrupted one exactly only with the same value."""

    num_iterations: PositiveInt = 20
    """Rollout-and-update iterations."""

    prompts: Path | None = None
    """JSONL of training prompts (`{"prompt": ...}` per line). `None`: the demo corpus's train split."""

    eval_prompts: Path | None = None
    """JSONL of held-out prompts for the before/after evaluation. `None`: the corpus's held-out split."""

    eval_size: PositiveInt = 64
    """Held-out prompts evaluated before and after training."""

    ppo: PPOConfig = PPOConfig()
    dpo: DPOConfig = DPOConfig()
    lagrangian: LagrangianConfig = LagrangianConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    rollback: RollbackConfig = RollbackConfig()


# ----------------------------------------------------------------------------- safety


class AuditConfig(_Section):
    enabled: bool = True
    """Write the hash-chained audit log (`<run dir>/audit.jsonl`)."""

    fsync: Literal["always", "batch", "never"] = "always"
    """`always`: fsync after every record (no record lost on power failure); `batch`: fsync on
    flush/close; `never`: leave it to the OS."""

    store_raw_text: bool = False
    """Store prompt and answer text (PHI-scrubbed) besides their hashes. Off: hashes only."""

    record_allowed: bool = True
    """Record `allow` verdicts of the guard too. Default true: a complete trail of every check;
    false keeps only escalations, rejections and guard errors when the log grows too fast."""

    key_file: Path | None = None
    """File holding the secret key of a keyed (HMAC-SHA-256) chain, e.g. from `openssl rand -hex 32`.
    `None`: the environment variable named by `key_env`, if set; else a plain SHA-256 chain. The
    key itself never goes in this file: the config is saved with every checkpoint."""

    key_env: str = "CLINICAL_RLHF_AUDIT_KEY"
    """Environment variable read for the key when `key_file` is not set."""


class SafetyConfig(_Section):
    max_unsafe_ratio: Probability = 0.10
    """Emergency stop when an iteration's unsafe (vetoed) answer ratio exceeds this."""

    escalate_is_unsafe: bool = False
    """Count `escalate` verdicts as unsafe for the ratio and the cost (reject always is)."""

    knowledge_dir: Path | None = None
    """Directory of knowledge YAML files overriding the shipped clinical knowledge base."""

    max_text_chars: Annotated[int, Field(ge=1_000)] = 1_048_576
    """Longest question or answer the guard reads, in characters. Reading is linear in length
    (about 1 s per MB on one core); anything longer is not read at all and is rejected as
    unreadable (`guard_error` / `input_too_long`; `check_prompt` escalates it), since an answer
    the guard has not read must never pass as "no veto". The default, 1 MiB, reads any realistic text."""

    holdout_knowledge: tuple[str, ...] = ()
    """Knowledge the training guard must not see, kept for the `holdout` judge of `evaluate`
    (docs/evaluation.md): `red_flag:<id>`, `red_flag_category:<category>`, `interaction:<id>`,
    `contraindication:<id>` or `dosage:<drug>` (that drug's maximum doses). Empty: the guard sees
    everything and there is no holdout judge. Names are checked against the knowledge base."""

    audit: AuditConfig = AuditConfig()


# ----------------------------------------------------------------------------- reward


class RewardWeights(_Section):
    safety: Annotated[float, Field(ge=0.0)] = 0.35
    """Weight of the safety objective."""

    guidelines: Annotated[float, Field(ge=0.0)] = 0.30
    """Weight of guideline adherence."""

    uncertainty: Annotated[float, Field(ge=0.0)] = 0.25
    """Weight of calibrated uncertainty."""

    coherence: Annotated[float, Field(ge=0.0)] = 0.10
    """Weight of fluency and relevance."""

    @model_validator(mode="after")
    def _sum_to_one(self) -> RewardWeights:
        total = self.safety + self.guidelines + self.uncertainty + self.coherence
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"reward weights must sum to 1.0, they sum to {total:.4f}")
        return self


class UncertaintyEstimationConfig(_Section):
    method: Literal["auto", "mc_dropout", "sampling", "off"] = "auto"
    """`mc_dropout` for models with dropout, `sampling` (answer disagreement) for models
    without; `auto` chooses by the model."""

    n_samples: PositiveInt = 10
    """Stochastic passes (MC-dropout) or sampled answers."""

    micro_batch_size: PositiveInt = 16
    """Sequences per forward pass of the estimator (passes x answers are batched in chunks of
    this size), which bounds its memory; 16 keeps a 7B model's activations modest."""

    sample_max_new_tokens: PositiveInt = 48
    """Length limit (tokens) of each extra answer sampled by the `sampling` method; shorter than
    the policy's answers, since disagreement shows in the first sentences."""

    consistency_threshold: Probability = 0.35
    """Mean similarity (0-1, see `reward/consistency.py`) of an answer to the other answers
    sampled for its prompt, below which it gets a `low_self_consistency` hallucination flag.
    0.35: paraphrases of one answer score about 0.6 with each other, unrelated answers about 0
    (tests/reward/test_hallucination.py), so one stray sample among three does not flag."""


class TriageRewardConfig(_Section):
    """How the guidelines objective scores the care an answer advises against the care the question
    needs (`reward/triage_score.py`, docs/reward.md). Levels: emergency, urgent, routine, self-care."""

    weight: Probability = 0.4
    """Share of the guidelines objective taken by triage agreement when the question's urgency is
    known (the rest: the matched guideline statements). 0 turns it off."""

    over_triage_penalty: Probability = 0.1
    """Taken off full agreement per level of care advised above the need: mild, because sending
    someone to more care than needed costs time, not harm (NHS 111 accepts over-triage for safety)."""

    under_triage_penalty: Probability = 0.5
    """Taken off per level below the need (an answer advising no care counts as self-care):
    strong, so one level short already scores below any over-triage."""

    safety_net_credit: Probability = 0.15
    """Added to an under-triaging answer that says when to seek more urgent care ("if it gets worse,
    call 999"), so a safety net beats none; it never lifts under-triage to the level of over-triage."""

    missing_safety_net_penalty: Probability = 0.05
    """Taken off an answer at or above the need that advises less than emergency care and does not
    say when to seek more (NICE asks for safety-netting advice with self-care and routine care:
    NG143, NG84, NG120). Below `over_triage_penalty`, so correct care without a safety net still
    beats any over-triage."""

    @model_validator(mode="after")
    def _under_stays_below_over(self) -> TriageRewardConfig:
        worst_over = 1.0 - 3 * self.over_triage_penalty
        best_under = 1.0 - self.under_triage_penalty + self.safety_net_credit
        if self.missing_safety_net_penalty >= self.over_triage_penalty > 0:
            raise ValueError(
                f"reward.triage: missing_safety_net_penalty ({self.missing_safety_net_penalty}) must stay below "
                f"over_triage_penalty ({self.over_triage_penalty}), or correct care without a safety net "
                f"would score below over-triage; lower missing_safety_net_penalty")
        if best_under >= worst_over:
            raise ValueError(
                f"reward.triage: one level of under-triage with a safety net ({best_under:.2f} = 1 - "
                f"under_triage_penalty + safety_net_credit) must score below three levels of over-triage "
                f"({worst_over:.2f} = 1 - 3 x over_triage_penalty); lower over_triage_penalty or "
                f"safety_net_credit, or raise under_triage_penalty")
        return self


class RewardConfig(_Section):
    weights: RewardWeights = RewardWeights()

    combination: Literal["linear", "geometric", "safety_gate"] = "linear"
    """`linear`: weighted sum; `geometric`: weighted geometric mean (one near-zero component
    pulls the total down); `safety_gate`: weighted sum, capped at the safety score when safety
    is below `safety_gate`."""

    safety_gate: Probability = 0.5
    """Threshold of the `safety_gate` combination."""

    veto_penalty: float = -1.0
    """Scalar reward of an answer the guard rejected (never the learned score)."""

    hallucination_penalty: Annotated[float, Field(ge=0.0)] = 0.2
    """Subtracted from the total per hallucination flag (capped at the total)."""

    unmatched_guideline_score: Probability = 0.5
    """Guideline-adherence score of an answer whose prompt matches no guideline statement: a
    neutral 0.5 (nothing to adhere to, nothing to reward), so unmatched prompts neither win nor
    lose against matched ones on this component."""

    max_answer_words: PositiveInt = 300
    """Words beyond which coherence falls off as max/words (over-long answers). 300 words is about
    twice a thorough answer to a patient question."""

    reference_logprob_weight: Probability = 0.3
    """Share of coherence taken from the reference model's mean per-token log-probability of the
    answer, when the caller passes it (otherwise coherence is rule-based only)."""

    model_uncertainty_weight: Probability = 0.3
    """Share of the uncertainty score taken from the agreement between the model's measured
    uncertainty (MC-dropout / sampling) and the uncertainty the wording expresses, when given."""

    uncertainty_estimation: UncertaintyEstimationConfig = UncertaintyEstimationConfig()

    learned_model: Path | None = None
    """Directory of a learned preference reward model used as an extra component."""

    learned_weight: Annotated[float, Field(ge=0.0)] = 0.0
    """Weight of the learned component, added on top of the rule-based total."""

    triage: TriageRewardConfig = TriageRewardConfig()
    """Scoring the care an answer advises against the question's urgency (guidelines objective)."""


class RewardModelConfig(_Section):
    """`clinical-rlhf train-reward`: a Bradley-Terry reward model on expert preferences, usable as
    `reward.learned_model` (docs/feedback.md)."""

    backbone: str | None = None
    """Registry id (`clinical-rlhf list-models`) or local checkpoint directory of the backbone the
    scalar head sits on. `None`: the policy's model (`model.name` / `model.path`; the local demo
    model by default). A directory keeps `model.name`'s prompt template."""

    lora_r: PositiveInt = 16
    """LoRA rank of the backbone's adapter (targets and quantization: `model_loading`; dropout is off)."""

    lora_alpha: PositiveInt = 32
    """LoRA scaling numerator (update scaled by alpha / r); 2 x r as for the policy."""

    learning_rate: Annotated[float, Field(gt=0.0)] = 2e-3
    """AdamW learning rate of the adapter and the head. 2e-3 suits the ~1M-parameter demo model;
    use 1e-5 to 5e-5 for a 7B backbone."""

    epochs: PositiveInt = 1
    """Passes over the training pairs. One pass of the shipped set already separates held-out
    pairs well; more passes mostly sharpen the margins of pairs already ranked right."""

    batch_size: PositiveInt = 16
    """Preference pairs per optimizer step (chosen and rejected in one forward: 2x sequences);
    also the sequences per forward pass when the model scores answers as `reward.learned`."""

    max_length: PositiveInt = 256
    """Most tokens of prompt + answer (also capped by the backbone's context). A longer one keeps
    the end of its prompt (at most half of the length) and cuts the answer to what is left."""

    seed: int = 0
    """Seeds the head's initialisation, the adapter and the order of the pairs."""

    train_file: Path | None = None
    """JSONL of expert preferences to train on (docs/feedback.md). `None`: the shipped set,
    `clinical_rlhf/data/preferences/train.jsonl`. Ties are skipped (they have no winner)."""

    heldout_file: Path | None = None
    """JSONL of held-out preferences for the accuracy report. `None`: the shipped
    `clinical_rlhf/data/preferences/heldout.jsonl` (prompts of the corpus's held-out split)."""

    output_dir: Path | None = None
    """Where the trained reward model is written. `None`: `<run dir>/reward_model`."""


# ----------------------------------------------------------------------------- monitoring


class AlertRuleConfig(_Section):
    name: str
    """Rule name, e.g. `safety_violation`."""

    condition: str
    """Comparison on a metric, e.g. `unsafe_ratio > 0.10` or `kl > target_kl`."""

    severity: Literal["info", "warning", "critical"] = "warning"
    """How loudly to report."""

    action: Literal["emergency_stop", "rollback", "early_stop_epoch", "log_and_notify"] = "log_and_notify"
    """What the trainer does when the condition holds."""

    for_duration: Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h|d)$")] | None = None
    """Prometheus `for:` of the exported rule: how long the condition must hold before the alert
    fires (`30s`, `5m`, ...). `None`: by severity, `0s` for critical (an emergency stop pages at
    once), `5m` for warning and `15m` for info (a brief blip does not page). The trainer itself
    acts on every iteration regardless."""

    runbook_url: str | None = None
    """`runbook_url` annotation of the exported rule: what to do when it fires. `None`: the
    rule's section of docs/monitoring.md ("Runbooks")."""


def _default_alert_rules() -> tuple[AlertRuleConfig, ...]:
    """The three rules of the system analysis."""
    return (
        AlertRuleConfig(name="safety_violation", condition="unsafe_ratio > 0.10",
                        severity="critical", action="emergency_stop"),
        AlertRuleConfig(name="reward_drift", condition="psi > 0.25",
                        severity="warning", action="log_and_notify"),
        AlertRuleConfig(name="training_divergence", condition="kl > target_kl",
                        severity="warning", action="early_stop_epoch"),
    )


class TrackingConfig(_Section):
    enabled: bool = True
    """Track the run with MLflow when `monitoring.report_to` lists `mlflow`; `false` turns MLflow off
    whatever `report_to` says (kept for configs written before `report_to`)."""

    uri: str | None = None
    """MLflow tracking URI. `None`: one SQLite store for every run under `training.runs_dir`
    (`<runs_dir>/mlflow.db`, artifacts in `<runs_dir>/mlartifacts/`), so the MLflow UI compares
    runs side by side."""

    experiment: str | None = None
    """MLflow experiment name. `None`: the config file's name without its extension (one
    experiment per config, e.g. `clinical_rlhf_config`), or `clinical-rlhf` without a file."""

    retry_seconds: Annotated[float, Field(ge=0.0)] = 30.0
    """Seconds to wait before retrying a tracking store that failed (doubling up to 8x while it
    keeps failing). Meanwhile metrics are queued in the run directory and replayed on success;
    30 s keeps a dead server from costing a request timeout every iteration."""


class PrometheusConfig(_Section):
    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """Port of the training metrics exporter; `None` leaves it off. 0 picks a free port."""

    host: str = "127.0.0.1"
    """Bind address of the exporter (loopback by default)."""

    linger_seconds: Annotated[float, Field(ge=0.0)] = 0.0
    """Seconds the exporter keeps serving after training ends (emergency stop included), so that
    Prometheus scrapes the final values and its alerts can fire. Set it to about twice the scrape
    interval when Prometheus pages on the run; 0 exits at once."""


class DriftConfig(_Section):
    reference: Literal["rolling", "fixed"] = "rolling"
    """What each tested sample is compared with: `rolling`, the `min_samples` values just before it
    (a sudden change, not the progress training is meant to make), or `fixed`, the first
    `reference_iterations` (every shift since the start; an improving reward counts as drift)."""

    reference_iterations: PositiveInt = 3
    """Iterations whose reward and safety scores form the first reference window."""

    psi_bins: Annotated[int, Field(ge=2)] = 10
    """PSI bins, fixed from reference quantiles."""

    ks_alpha: Probability = 0.05
    """KS p-value below which a shift is reported."""

    cusum_slack: Annotated[float, Field(ge=0.0)] = 0.5
    """CUSUM slack k, in reference standard deviations."""

    cusum_threshold: Annotated[float, Field(gt=0.0)] = 5.0
    """CUSUM decision threshold h, in reference standard deviations."""

    iqr_factor: Annotated[float, Field(gt=0.0)] = 1.5
    """Tukey fence multiplier."""

    min_samples: PositiveInt = 200
    """Fewest values in the reference and in each tested sample. The reference keeps filling past
    `reference_iterations` until it holds this many; a tested sample pools the latest iterations
    until it does. Without drift PSI is about (bins - 1) * (1/n + 1/m) from sampling noise alone:
    0.09 at 10 bins and 200 each (below the 0.1 "stable" line), but 1.5 for 8 vs 24 values."""


class MemoryConfig(_Section):
    warning_fraction: Probability = 0.85
    """Fraction of RAM/VRAM in use that raises a warning and shrinks micro-batches."""

    critical_fraction: Probability = 0.95
    """Fraction that is treated as an imminent out-of-memory error."""


ReportTarget = Literal["mlflow", "tensorboard", "none"]


class MonitoringConfig(_Section):
    report_to: tuple[ReportTarget, ...] = ("mlflow",)
    """Experiment trackers that receive every step's metrics, as in transformers' `report_to`:
    `mlflow` (params, metrics, tags, artifacts; `tracking` below), `tensorboard` (scalars through
    torch's own `SummaryWriter` into `<run dir>/tensorboard/`; needs the `tensorboard` package,
    extra `tensorboard`), or `none` alone. metrics.jsonl and events.jsonl are always written."""

    tracking: TrackingConfig = TrackingConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    drift: DriftConfig = DriftConfig()
    memory: MemoryConfig = MemoryConfig()
    alerts: tuple[AlertRuleConfig, ...] = Field(default_factory=_default_alert_rules)
    """Alert rules evaluated every iteration (see `clinical-rlhf alerts export`)."""

    @model_validator(mode="after")
    def _none_alone(self) -> MonitoringConfig:
        if "none" in self.report_to and len(self.report_to) > 1:
            raise ValueError("`report_to`: `none` cannot be combined with a tracker; write [none] alone "
                             "or list the trackers, e.g. [mlflow, tensorboard]")
        return self

    @property
    def mlflow_enabled(self) -> bool:
        return "mlflow" in self.report_to and self.tracking.enabled


# ----------------------------------------------------------------------------- serving


class ServeApiKeyConfig(_Section):
    """One client of the server. The key itself is never written to a config file."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    """Name of the key's holder (a ward, an application). Not secret: it is the actor of the key's
    audit records and may appear in logs."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 hex digest of the key, as printed by `clinical-rlhf serve-key`. A hash suffices
    because keys are 256-bit random tokens: there is nothing to guess that a slow hash would protect."""

    requests_per_minute: PositiveInt | None = None
    """This key's rate limit (requests/minute); `None` takes `serve.rate_limit.requests_per_minute`."""


class ServeBatchingConfig(_Section):
    enabled: bool = True
    """Generate requests that arrive close together as one batch (local backend only; a remote
    vLLM/TGI server batches on its own)."""

    max_batch_size: PositiveInt = 16
    """Most requests generated together. 16 keeps a 7B model's KV cache for 16 x 2k tokens within
    a 24 GB GPU; raise it on larger GPUs."""

    max_wait_ms: Annotated[float, Field(ge=0.0, le=1000.0)] = 10.0
    """Longest time (ms) the first request of a batch waits for others. 10 ms is small next to a
    generation (~100 ms and up) but long enough to gather the requests of a burst."""


class ServeRateLimitConfig(_Section):
    requests_per_minute: PositiveInt | None = 120
    """Sustained requests per minute per API key (token bucket); `None` turns the limit off.
    120/min is two answers a second, well above a clinician's pace, well below a runaway script's."""

    burst: PositiveInt = 20
    """Requests a key may send at once before the per-minute rate applies (the bucket's size)."""


class ServeRemoteConfig(_Section):
    """An OpenAI-compatible generation server (vLLM, TGI, another clinical-rlhf server)."""

    base_url: str | None = None
    """Its API root, e.g. `http://127.0.0.1:8001/v1`. Required with `serve.backend: openai_compatible`."""

    model: str | None = None
    """Model name to request upstream; `None` takes the first one its `GET /models` lists."""

    api_key_env: str | None = "CLINICAL_RLHF_UPSTREAM_API_KEY"
    """Environment variable holding the upstream's API key (never the key itself in YAML);
    sent as a Bearer token when the variable is set."""

    max_connections: PositiveInt = 64
    """Most concurrent HTTP connections to the upstream."""


class ServeFeedbackConfig(_Section):
    """`POST /v1/feedback`: clinicians' ratings and corrections of served answers, recorded as
    preference pairs for the reward model (docs/serving.md, "Feedback")."""

    enabled: bool = True
    """Offer `POST /v1/feedback` and remember served completions for it. Off: the endpoint
    answers 404 `feedback_disabled` and nothing is remembered."""

    preferences_file: Path | None = None
    """Preference JSONL that corrections (and opposite ratings of one conversation) are appended
    to; `None`: `<run dir>/feedback/preferences.jsonl`, beside the serve audit log. Point the
    reward model's preference file at it."""

    ratings_file: Path | None = None
    """JSONL of every rating, with the conversation and the rated answer; `None`:
    `<run dir>/feedback/ratings.jsonl`. Read at start to pair new ratings with earlier ones."""

    quarantine_file: Path | None = None
    """JSONL of the corrections the safety guard rejected, kept for review and never trained on;
    `None`: `<run dir>/feedback/quarantine.jsonl`."""

    remember_completions: PositiveInt = 10_000
    """Served completions remembered for feedback (least recently used dropped first); feedback
    on an older one is a 404. 10,000 is about a day of a busy ward's answers, ~30 MB of text."""

    remember_max_mib: PositiveInt = 128
    """Cap (MiB, counted as text characters) on the remembered completions' text, so long
    conversations cannot exhaust memory; the oldest are dropped first when it is reached."""

    persist_completions: bool = False
    """Also append each served completion to `<run dir>/feedback/served_completions.jsonl` (two
    rotated files of at most `remember_completions` lines) and reload it at start, so feedback
    survives a restart. Off by default: that file holds the raw text of every answer, which the
    audit log (hashes only) deliberately does not."""

    fsync: bool = True
    """fsync the feedback files (preferences, ratings, quarantine) after each feedback request before
    it is answered: a clinician's judgement is rare and costly to lose (~3 ms per request)."""


class ServeConfig(_Section):
    """`clinical-rlhf serve`: the OpenAI-compatible, safety-gated HTTP API (docs/serving.md)."""

    host: str = "127.0.0.1"
    """Bind address. Loopback by default: expose it to a network only behind a TLS proxy."""

    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    """TCP port; 0 picks a free one (printed at start)."""

    backend: Literal["local", "openai_compatible"] = "local"
    """`local`: the model of `model:` (plus the adapter of `checkpoint`) in this process;
    `openai_compatible`: generate on `serve.remote` and gate the answers here."""

    checkpoint: Path | None = None
    """Training checkpoint directory whose adapter is loaded into the local model (`--checkpoint`
    overrides it). `None` serves the base model without a trained adapter."""

    served_model_name: str | None = None
    """Model id clients send and `GET /v1/models` lists; `None` takes `model.name`."""

    api_keys: tuple[ServeApiKeyConfig, ...] = ()
    """Clients allowed to call the API, by id and key hash. Keys from `api_keys_env` are added."""

    api_keys_env: str = "CLINICAL_RLHF_API_KEYS"
    """Environment variable with more keys as `id:key` pairs separated by commas; hashed at start,
    the plain keys are not kept. Serving needs at least one key from here or `api_keys`."""

    max_body_bytes: PositiveInt = 1_048_576
    """Largest request body accepted (bytes); larger ones get 413. 1 MiB holds a long case history."""

    default_max_tokens: PositiveInt = 256
    """Answer length (tokens) when a request sets none, cut to what the model's context has left."""

    max_tokens_limit: PositiveInt = 1024
    """Largest `max_tokens` a request may ask for; more is a 422."""

    generation_timeout_seconds: Annotated[float, Field(gt=0.0)] = 60.0
    """Longest wait (queue + generation, seconds) for an answer before the request ends with 504."""

    guard_timeout_seconds: Annotated[float, Field(gt=0.0)] = 5.0
    """Longest a guard check may run on its worker (seconds); past it the worker process is killed
    and replaced. The wait for a free worker has the same limit apart (past it nothing is killed), so
    a burst of requests fails safe without killing healthy workers. Either way the check counts as a
    guard failure, which rejects (fallback answer, quarantined correction). A check takes ~1 ms, a
    32,768-character text at most ~0.3 s here: 5 s only stops a pathological input."""

    guard_workers: PositiveInt = 2
    """Worker processes running guard checks (each builds its own guard at startup, ~40 MiB). In a
    process a slow check cannot hold the server's GIL, and past its time limit it can be ended."""

    audit_anchor_seconds: Annotated[float, Field(gt=0.0)] = 300.0
    """How often the server logs the audit chain's anchor (record count and head hash) and sets
    its Prometheus series; also logged at shutdown. The log is an external copy of the head."""

    shutdown_timeout_seconds: Annotated[float, Field(gt=0.0)] = 90.0
    """On SIGTERM, how long in-flight requests may take to finish before they are cancelled:
    longer than `generation_timeout_seconds`, so a request that is still in time completes."""

    audit_file: Path | None = None
    """Audit log of the served requests; `None`: `<run dir>/serve_audit.jsonl`. Written with the
    `safety.audit` settings (fsync, raw text); serving refuses to start with the audit off."""

    fallback_message: str = ("I can't give you a safe answer to this. Please ask a doctor, nurse or "
                             "pharmacist, who can take your whole situation into account.")
    """Sent instead of an answer the guard rejects (after the emergency advice when the question
    has red flags). Checked by the guard at start."""

    escalation_notice: str = "A clinician should review this advice before you act on it."
    """Appended to an answer the guard escalates (returned, but to be checked by a clinician)."""

    batching: ServeBatchingConfig = ServeBatchingConfig()
    rate_limit: ServeRateLimitConfig = ServeRateLimitConfig()
    remote: ServeRemoteConfig = ServeRemoteConfig()
    feedback: ServeFeedbackConfig = ServeFeedbackConfig()

    @model_validator(mode="after")
    def _remote_needs_url(self) -> ServeConfig:
        if self.backend == "openai_compatible":
            url = self.remote.base_url or ""
            if not url.startswith(("http://", "https://")):
                raise ValueError("serve.backend openai_compatible needs serve.remote.base_url, an http(s) URL "
                                 "such as http://127.0.0.1:8001/v1")
        ids = [key.id for key in self.api_keys]
        if len(set(ids)) != len(ids):
            raise ValueError("serve.api_keys has two keys with the same id; give each client its own id")
        return self


# ----------------------------------------------------------------------------- evaluation


class LLMJudgeConfig(_Section):
    """The `llm` judge: a language model grading each answer against the clinical rubrics
    (`clinical_rlhf/data/rubrics/`, docs/evaluation.md) and the rubric-graded suites."""

    backend: Literal["local", "openai_compatible"] = "local"
    """`local`: a transformers model in this process (`model`, or `path`); `openai_compatible`:
    `remote` (vLLM, TGI, another clinical-rlhf server, a hosted API)."""

    model: str = "clinical-demo"
    """Registry id of the local judge (`clinical-rlhf models list`). The default, the tiny demo
    model, runs anywhere but grades poorly: use an instruction-tuned or guard model for real."""

    path: Path | None = None
    """Local checkpoint directory of the judge (save_pretrained layout), loaded as `model`'s
    architecture entry says; `None`: the registry's source for `model`."""

    remote: ServeRemoteConfig = ServeRemoteConfig()
    """The OpenAI-compatible endpoint (`base_url`, `model`, `api_key_env`: the key is read from
    that environment variable, never from YAML)."""

    rubrics: tuple[str, ...] = ("under_triage", "harmful_compliance", "dosing_error",
                                "unsafe_interaction_advice", "missing_safety_net", "hallucinated_fact")
    """Concerns each answer is judged on, one rubric file each; an answer is unsafe when any is."""

    rubric_dir: Path | None = None
    """Directory of rubric YAML files replacing the shipped ones by name (your own wording)."""

    output_format: Literal["json", "llama_guard", "granite_guardian"] = "json"
    """How verdicts are read: `json` (one object, `{"verdict": "safe"|"unsafe", "reason": ...}`),
    `llama_guard` (first line `safe` or `unsafe`, as Llama Guard 3 answers) or `granite_guardian`
    (`Yes` = the risk is present = unsafe, `No` = safe, as Granite Guardian 3 answers). Anything
    else is counted as unparsable, never as safe."""

    prompt_mode: Literal["chat", "raw"] = "chat"
    """`chat`: the rubric is the user turn, in the judge's chat format (the registry entry's
    template locally, the server's template remotely); `raw`: the rendered rubric is the whole
    prompt, sent as a completion, so a rubric file can carry a guard model's own prompt format
    with your criteria (Llama Guard 3's categories, Granite Guardian's risk definition)."""

    max_new_tokens: PositiveInt = 160
    """Tokens per judgement: room for the JSON verdict and a one-sentence reason."""

    temperature: Annotated[float, Field(ge=0.0)] = 0.0
    """0: greedy, so a rerun gives the same judgement and the cache is exact."""

    batch_size: PositiveInt = 8
    """Judgements generated together (local) or requests in flight (remote)."""

    timeout_seconds: Annotated[float, Field(gt=0)] = 120.0
    """Per request to a remote judge; a timeout is an unparsable judgement, never a safe one."""

    cache_file: Path | None = None
    """Judgement cache (JSONL), keyed by judge, rubric hash, prompt and answer. `None`:
    `<run dir>/evaluation/judge_cache.jsonl`."""

    cache: bool = True
    """Reuse cached judgements; off: every judgement is asked again (and still recorded)."""


class EvaluationConfig(_Section):
    """`clinical-rlhf evaluate` (checkpoint A vs B) and `clinical-rlhf agreement` (docs/evaluation.md)."""

    num_prompts: PositiveInt | None = None
    """Held-out single-turn prompts evaluated. `None`: `training.eval_size`, the prompts the trainer
    evaluates before and after training (the corpus's held-out split or `training.eval_prompts`)."""

    conversations: bool = True
    """Add the multi-turn safety set to the default prompts: per knowledge-base red flag, a
    conversation stating it in an earlier turn and one denying it (45 with the shipped knowledge)."""

    samples_per_prompt: PositiveInt = 1
    """Answers sampled per prompt and policy. A prompt's answers are averaged before any
    statistic, so the bootstrap and the tests treat the prompt, not the answer, as the unit."""

    bootstrap_resamples: Annotated[int, Field(ge=100)] = 2000
    """Percentile-bootstrap resamples per interval. 2000 keeps the Monte-Carlo error of a 95%
    bound near 0.005 of the standard error (Efron & Tibshirani 1993 suggest 1000-2000)."""

    confidence_level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    """Coverage of every confidence interval."""

    seed: int = 1234
    """Seeds the sampling of both policies (the same random stream for A and B, so their answers
    are paired), the conversation set and the bootstrap."""

    significance_test: Literal["wilcoxon", "sign"] = "wilcoxon"
    """Paired test whose p-value is the headline for A vs B: `wilcoxon` (signed-rank on the
    per-prompt reward differences, scipy.stats.wilcoxon) or `sign` (exact binomial on wins
    against losses, ties dropped). Both are computed and written; this picks the one shown."""

    tie_epsilon: Annotated[float, Field(ge=0.0)] = 1e-6
    """Two reward totals within this of each other are a tie: a prompt neither policy wins, an
    answer pair the system has no preference on. 1e-6 treats only equal scores (float noise,
    two vetoed answers) as ties; raise it to call near-equal answers even."""

    preferences: Path | None = None
    """Expert preference file (docs/feedback.md) for the agreement. `None`: the shipped held-out
    split, `clinical_rlhf/data/preferences/heldout.jsonl`."""

    agreement_target: Probability = 0.8
    """Expert agreement the system analysis sets as the target; the report says whether it is met."""

    output_dir: Path | None = None
    """Where evaluation.json and evaluation.html go. `None`: `<run dir>/evaluation/<checkpoint>`
    (with `_vs_<baseline>` appended when there is one), the run being the checkpoint's."""

    judges: tuple[Literal["guard", "holdout", "llm"], ...] = ("guard",)
    """Judges of every answer, each kept apart from the training reward: `guard` (the training
    signal itself), `holdout` (rules from `safety.holdout_knowledge`, which the training guard
    never saw), `llm` (`llm_judge`: a model grading against the written clinical rubrics).
    `evaluate --judge NAME` (repeatable) replaces this list."""

    llm_judge: LLMJudgeConfig = LLMJudgeConfig()

    max_disagreements: Annotated[int, Field(ge=0)] = 50
    """Answers on which two judges disagree, listed with their texts in evaluation.json and
    .html (the first ones in prompt order); enough to read, few enough to keep the page small."""


# ----------------------------------------------------------------------------- root


class Config(_Section):
    model: ModelConfig = ModelConfig()
    model_loading: ModelLoadingConfig = ModelLoadingConfig()
    demo_model: DemoModelConfig = Field(default_factory=DemoModelConfig)  # the cache dir is read per config
    training: TrainingConfig = TrainingConfig()
    safety: SafetyConfig = SafetyConfig()
    reward: RewardConfig = RewardConfig()
    reward_model: RewardModelConfig = RewardModelConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    serve: ServeConfig = ServeConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    _source: Path | None = PrivateAttr(default=None)
    """The YAML file this config was read from (None for defaults or a mapping)."""

    @property
    def source(self) -> Path | None:
        return self._source

    def __eq__(self, other: object) -> bool:
        """Equal settings are equal configs, wherever they were read from (`_source` aside)."""
        return type(other) is type(self) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))

    @property
    def experiment_name(self) -> str:
        """`monitoring.tracking.experiment`, else the config file's stem, else `clinical-rlhf`."""
        configured = self.monitoring.tracking.experiment
        return configured or (self._source.stem if self._source is not None else "clinical-rlhf")

    @property
    def run_dir(self) -> Path:
        """`runs/<run_name>/`: everything a run writes lives here."""
        return self.training.runs_dir / self.training.run_name

    def to_yaml(self) -> str:
        """The resolved config as YAML (saved with every checkpoint, logged to the tracker)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ----------------------------------------------------------------------------- loading


def _dotted(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location) or "<root>"


def _sibling_keys(location: tuple[Any, ...]) -> list[str]:
    """The valid keys of the section that holds `location` (list indices skipped), for suggestions."""
    model: type[BaseModel] = Config
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        if typing.get_origin(annotation) is tuple:  # `monitoring.alerts`: a tuple of rule sections
            annotation = typing.get_args(annotation)[0]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _unknown_key_hint(location: tuple[Any, ...]) -> str:
    close = difflib.get_close_matches(str(location[-1]), _sibling_keys(location), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"`{'.'.join(map(str, (*location[:-1], key)))}`" for key in close) + "?"
    return "remove it or check its spelling (`clinical-rlhf config show` lists every key)"


def _error_source(key: str, source: str, overrides: tuple[str, ...]) -> str:
    """`--set a.b=c` when that override wrote `key` (or the section above it), else the file."""
    for override in reversed(overrides):
        path = override.partition("=")[0].strip()
        if key == path or key.startswith(path + ".") or path.startswith(key + "."):
            return f"--set {override}"
    return source


def _format_validation_error(error: ValidationError, source: str, overrides: tuple[str, ...] = ()) -> str:
    lines = []
    for item in error.errors():
        key = _dotted(item["loc"])
        where = _error_source(key, source, overrides)
        if item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key `{key}`; {_unknown_key_hint(item['loc'])}")
        else:
            message = item["msg"].removeprefix("Value error, ")
            given = item.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"{where}: `{key}`: {message}{shown}")
    return "\n".join(lines)


def parse_override(override: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value parsed as YAML, so `3`, `true`, `[x, y]` type)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override `{override}` is not of the form key.path=value, e.g. training.seed=7")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply `--set` overrides to the raw mapping; unknown keys are caught by validation."""
    for override in overrides:
        path, value = parse_override(override)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override `{override}`: `{'.'.join(path[:depth + 1])}` is a value, "
                                  f"not a section")
            node = child
        node[path[-1]] = value
    return data


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice (plain YAML would keep the last value silently)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in first_line:
                    raise DuplicateKeyError(f"key `{key}` appears twice in one section, at line "
                                            f"{first_line[key]} and line {line}")
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, turning every failure into one clear ConfigError."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; pass an existing file, "
                          f"e.g. config/clinical_rlhf_config.yaml") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (line {line}: {exc.reason}); "
                          f"save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError(f"config file {path}: {exc}; keep one of them") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections (model:, training:, ...), "
                          f"not a {type(data).__name__}")
    return data


def config_from_mapping(data: dict[str, Any], source: str = "config", overrides: tuple[str, ...] = ()) -> Config:
    """Validate a raw mapping; an error names `source`, or the `--set` override that wrote the key."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source, tuple(overrides))) from None


def _is_path_field(annotation: Any) -> bool:
    return annotation is Path or (typing.get_origin(annotation) in (typing.Union, types.UnionType)
                                  and Path in typing.get_args(annotation))


def resolve_relative_paths(data: dict[str, Any], base: Path, model: type[BaseModel] = Config) -> dict[str, Any]:
    """Make every relative path written in a config file relative to the file's own directory
    (`base`), so a config means the same files whatever the current directory. Walks the schema:
    only fields typed `Path` are touched; `--set` values keep the shell's meaning (the current
    directory) because they are applied afterwards."""
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None or value is None:
            continue  # an unknown key is validation's to report
        annotation = field.annotation
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            resolve_relative_paths(value, base, annotation)
        elif _is_path_field(annotation) and isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[key] = os.path.normpath(base / value)  # `config/../runs` shown as `runs`
        elif _is_path_field(annotation) and isinstance(value, str):
            data[key] = str(Path(value).expanduser())
    return data


def load_config(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """YAML file (or the defaults when `path` is None) + overrides -> validated, frozen Config.
    Relative paths in the file are read against the file's directory (`resolve_relative_paths`)."""
    data = resolve_relative_paths(read_yaml(Path(path)), Path(path).resolve().parent) if path is not None else {}
    data = apply_overrides(data, overrides)
    cfg = config_from_mapping(data, source=str(path) if path is not None else "defaults", overrides=tuple(overrides))
    cfg._source = Path(path).resolve() if path is not None else None
    return cfg

