"""`build_policy(cfg)`: tokenizer + policy (+ LoRA, quantization) + critic + reference policy.

Every model, Hub or local, goes through the real transformers loading path. Whatever the user
can fix (a model not in the cache, a gated repository, a bad local path, impossible
settings) ends as one `clinical_rlhf.errors` sentence, never a traceback from a library.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import warnings
from pathlib import Path

from clinical_rlhf.config import Config
from clinical_rlhf.errors import ConfigError, ModelNotFoundError
from clinical_rlhf.models import hardware
from clinical_rlhf.models.bundle import LoadInfo, PolicyBundle
from clinical_rlhf.models.demo import ensure_demo_model
from clinical_rlhf.models.kernels import fuse_gelu
from clinical_rlhf.models.loading_errors import translate_load_error
from clinical_rlhf.models.registry import LORA_TARGETS, ModelEntry, get_model_entry
from clinical_rlhf.models.value_head import ValueHead, ValueModel

logger = logging.getLogger(__name__)


class _DropMessages(logging.Filter):
    """Drops library log records that repeat on every call and that no user can act on."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


# bitsandbytes logs on every int8 matmul whose input is not fp16 (on CPU inputs are fp32 by
# design), and on import when an optional accelerated CPU kernel package is absent (the
# built-in kernel is used instead). peft still calls a method transformers 5 marks deprecated.
logging.getLogger("bitsandbytes.autograd._functions").addFilter(_DropMessages("MatMul8bitLt: inputs will be cast"))
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_DropMessages("Failed to load CPU gemm_4bit_forward"))
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def offline_mode() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them only at import)."""
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(name, "").strip().lower() in truthy
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_source(cfg: Config, entry: ModelEntry) -> tuple[str, bool]:
    """(where to load from, is it a local directory)."""
    if cfg.model.path is not None:
        path = Path(cfg.model.path).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"model.path {path} is not a directory; point it at a folder holding "
                                     f"config.json and the weights (as written by save_pretrained)")
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model.path {path} has no config.json; it must be a transformers "
                                     f"checkpoint directory (save_pretrained or `hf download`)")
        return str(path), True
    if entry.hub_id is None:  # the demo model is built locally, on first use
        return str(ensure_demo_model(cfg)), True
    return entry.hub_id, False


def _load_error(exc: BaseException, source: str, entry: ModelEntry, is_local: bool):
    return translate_load_error(exc, source=source, entry=entry, is_local=is_local, offline=offline_mode())


def _pretrained_kwargs(cfg: Config, is_local: bool) -> dict:
    kwargs: dict = {"trust_remote_code": cfg.model.trust_remote_code}
    if not is_local:
        kwargs["revision"] = cfg.model.revision
        if offline_mode():
            kwargs["local_files_only"] = True
    return kwargs


def load_tokenizer(source: str, cfg: Config, entry: ModelEntry, is_local: bool):
    """Tokenizer with a pad token and left padding (batched generation needs prompts right-aligned)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **_pretrained_kwargs(cfg, is_local))
    except Exception as exc:  # noqa: BLE001 - every library failure becomes one user sentence
        raise _load_error(exc, source, entry, is_local) from None
    if tokenizer.pad_token is None:
        # Llama-family tokenizers ship without a pad token; EOS is the usual stand-in, and the
        # attention mask (not the token id) is what marks padding everywhere in this project.
        if tokenizer.eos_token is None:
            raise ConfigError(f"the tokenizer of {source} has neither a pad nor an EOS token; "
                              f"add one to its tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _quantization_config(cfg: Config, device):
    """(BitsAndBytesConfig or None, precision label). Unavailable quantization falls back, once, loudly."""
    import torch

    loading = cfg.model_loading
    if not (loading.load_in_4bit or loading.load_in_8bit):
        return None, None
    usable, reason = hardware.bitsandbytes_usable(device)
    if not usable:
        logger.warning("%s-bit quantization is unavailable (%s); loading the base unquantized instead",
                       4 if loading.load_in_4bit else 8, reason)
        return None, None
    from transformers import BitsAndBytesConfig

    if loading.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True), "int8"
    compute_dtype = getattr(torch, loading.bnb_4bit_compute_dtype)
    if compute_dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        logger.warning("this GPU has no bfloat16 support; using float16 for bnb_4bit_compute_dtype")
        compute_dtype = torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=loading.bnb_4bit_quant_type, bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_use_double_quant=loading.bnb_4bit_use_double_quant,
    ), loading.bnb_4bit_quant_type


def _device_map(device) -> dict:
    """Where a quantized load puts every module: the device's own index, else (a bare "cuda")
    this process's current GPU, which under `accelerate launch` is the rank's LOCAL_RANK GPU
    (accelerate sets it), not GPU 0 for every rank."""
    if device.type != "cuda":
        return {"": device.type}
    if device.index is not None:
        return {"": device.index}
    import torch

    if torch.cuda.is_available() and torch.distributed.is_available() and torch.distributed.is_initialized():
        return {"": torch.cuda.current_device()}
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def load_causal_lm(source: str, cfg: Config, entry: ModelEntry, is_local: bool, device, dtype,
                   attn_implementation: str):
    """(model, precision label). A quantized load that fails is retried unquantized with one warning.
    GPT-2's `gelu_new` runs as torch's fused kernel of the same formula (`kernels.fuse_gelu`)."""
    model, precision = _load_causal_lm(source, cfg, entry, is_local, device, dtype, attn_implementation)
    fuse_gelu(model)
    return model, precision


def _load_causal_lm(source: str, cfg: Config, entry: ModelEntry, is_local: bool, device, dtype,
                    attn_implementation: str):
    from transformers import AutoModelForCausalLM

    quantization, precision = _quantization_config(cfg, device)
    kwargs = dict(_pretrained_kwargs(cfg, is_local), dtype=dtype, attn_implementation=attn_implementation)
    if quantization is not None:
        try:
            model = AutoModelForCausalLM.from_pretrained(source, quantization_config=quantization,
                                                         device_map=_device_map(device), **kwargs)
            return model, precision
        except OSError as exc:  # missing or unreadable files: not a quantization problem
            raise _load_error(exc, source, entry, is_local) from None
        except Exception as exc:  # noqa: BLE001 - bitsandbytes raises many types
            logger.warning("%s quantization failed (%s: %s); loading the base unquantized in %s instead",
                           precision, type(exc).__name__, str(exc).splitlines()[0][:200], _dtype_label(dtype))
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _load_error(exc, source, entry, is_local) from None
    return model.to(device), _dtype_label(dtype)


def _dtype_label(dtype) -> str:
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[str(dtype).removeprefix("torch.")]


def _adaptable_module_names(model) -> set[str]:
    """Last name component of every module LoRA can wrap (Linear, GPT-2 Conv1D, bnb layers)."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    names = set()
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, Conv1D)) or type(module).__name__ in ("Linear8bitLt", "Linear4bit"):
            names.add(name.rsplit(".", 1)[-1])
    return names


def resolve_lora_targets(cfg: Config, entry: ModelEntry, model) -> tuple[str, ...]:
    """Configured targets, else the registry's for the loaded architecture; all must exist."""
    model_type = getattr(model.config, "model_type", entry.family)
    targets = cfg.model_loading.target_modules or LORA_TARGETS.get(model_type) or entry.lora_target_modules
    available = _adaptable_module_names(model)
    missing = [name for name in targets if name not in available]
    if missing:
        raise ConfigError(f"model_loading.target_modules: {missing} do not exist in this {model_type} model; "
                          f"its adaptable modules are {sorted(available)}")
    return tuple(targets)


def attach_lora(model, cfg: Config, targets: tuple[str, ...], quantized: bool, *, task_type: str | None):
    """Wrap `model` with a fresh LoRA adapter; the base stays frozen."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers.pytorch_utils import Conv1D

    loading = cfg.model_loading
    if quantized:
        # Freezes the base and upcasts norms/embeddings to fp32 for stable training (QLoRA recipe).
        # (Checkpointing, when asked for, is switched on by the caller.)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    # GPT-2's Conv1D stores weights transposed; peft must be told so.
    fan_in_fan_out = any(isinstance(m, Conv1D) for n, m in model.named_modules()
                         if n.rsplit(".", 1)[-1] in targets)
    lora = LoraConfig(r=loading.lora_r, lora_alpha=loading.lora_alpha, lora_dropout=loading.lora_dropout,
                      target_modules=list(targets), bias="none", task_type=task_type,
                      fan_in_fan_out=fan_in_fan_out)
    return get_peft_model(model, lora)


def _enable_gradient_checkpointing(model) -> None:
    # Non-reentrant checkpointing works with a frozen embedding layer (LoRA) without the
    # input-requires-grad hook the reentrant variant needs. transformers 5 renamed the method.
    options = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
    model.config.use_cache = False  # the cache is useless when activations are recomputed


def build_value_model(source: str, cfg: Config, entry: ModelEntry, is_local: bool, device, dtype,
                      attn_implementation: str, targets: tuple[str, ...]) -> ValueModel:
    """A second backbone (LM head dropped) + value head, with its own LoRA adapter when LoRA is on."""
    causal, precision = load_causal_lm(source, cfg, entry, is_local, device, dtype, attn_implementation)
    backbone = causal.base_model  # GPT2Model / LlamaModel / BioGptModel: no LM head
    if cfg.model_loading.gradient_checkpointing:
        _enable_gradient_checkpointing(backbone)
    if cfg.model_loading.use_lora:
        backbone = attach_lora(backbone, cfg, targets, precision in ("int8", "nf4", "fp4"), task_type=None)
    return ValueModel(backbone, causal.config.hidden_size).to(device)


def resolve_attention(source: str, cfg: Config, entry: ModelEntry, is_local: bool, device, dtype) -> str:
    """The attention kernel `model.attn_implementation` resolves to for this model class, device
    and dtype (flash-attention, sdpa or eager); a config that cannot be read is one clear error."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        hf_config = AutoConfig.from_pretrained(source, **_pretrained_kwargs(cfg, is_local))
        model_class = AutoModelForCausalLM._model_mapping[type(hf_config)]
    except Exception as exc:  # noqa: BLE001 - every library failure becomes one user sentence
        raise _load_error(exc, source, entry, is_local) from None
    return hardware.resolve_attn_implementation(cfg.model.attn_implementation, model_class, device, dtype)


def build_policy(cfg: Config) -> PolicyBundle:
    """Build the policy bundle `cfg` describes. See `PolicyBundle` for what it offers."""
    started = time.perf_counter()
    entry = get_model_entry(cfg.model.name)
    loading = cfg.model_loading
    if (loading.load_in_4bit or loading.load_in_8bit) and not loading.use_lora:
        raise ConfigError("quantized weights cannot be trained directly: set model_loading.use_lora=true, "
                          "or turn load_in_4bit/load_in_8bit off for full fine-tuning")
    source, is_local = resolve_source(cfg, entry)
    device = hardware.resolve_device(cfg.model.device)
    dtype = hardware.resolve_dtype(cfg.model.dtype, device)
    tokenizer = load_tokenizer(source, cfg, entry, is_local)
    attn = resolve_attention(source, cfg, entry, is_local, device, dtype)
    model, precision = load_causal_lm(source, cfg, entry, is_local, device, dtype, attn)
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    targets = resolve_lora_targets(cfg, entry, model)
    quantized = precision in ("int8", "nf4", "fp4")
    reference_model = None
    if loading.use_lora:
        if loading.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        model = attach_lora(model, cfg, targets, quantized, task_type="CAUSAL_LM")
    else:
        reference_model = _frozen_copy(model)
        if loading.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
    if loading.shared_value_base:
        value_model = None
        value_head = ValueHead(model.config.hidden_size).to(device)
    else:
        value_model = build_value_model(source, cfg, entry, is_local, device, dtype, attn, targets)
        value_head = value_model.head
    info = LoadInfo(source=source, precision=precision, attn_implementation=attn,
                    load_seconds=time.perf_counter() - started)
    logger.info("loaded %s from %s (%s, %s attention) in %.1fs", entry.id, source, precision, attn,
                info.load_seconds)
    temperature = cfg.training.ppo.temperature or entry.default_temperature
    return PolicyBundle(model=model, tokenizer=tokenizer, entry=entry, device=device, value_head=value_head,
                        value_model=value_model, reference_model=reference_model, uses_lora=loading.use_lora,
                        temperature=temperature, info=info)


def _frozen_copy(model):
    """The reference policy when LoRA is off: a copy taken before any update, never trained."""
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference
