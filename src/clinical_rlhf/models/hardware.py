"""What this machine offers: device, dtype, attention kernel, free memory, CPU cores.

Every choice a config leaves on `auto` is made here, once, so the factory and the CLI agree.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from clinical_rlhf.errors import ConfigError


def available_cpu_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def resolve_device(requested: str):
    """`auto` -> CUDA, then Apple MPS, then CPU. An explicit device that is absent is an error."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device is `cuda` but no CUDA GPU is visible to torch; set model.device=auto "
                          "or cpu, or install a CUDA build of torch")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("model.device is `mps` but Apple MPS is not available; set model.device=auto or cpu")
    return torch.device(requested)


def resolve_dtype(requested: str, device):
    """`auto` -> bfloat16 on GPUs that support it, float16 on other GPUs and MPS, float32 on CPU."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def flash_attention_usable(device) -> bool:
    """flash-attn is installed and the GPU is Ampere or newer (compute capability >= 8.0)."""
    import torch

    if device.type != "cuda" or importlib.util.find_spec("flash_attn") is None:
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def resolve_attn_implementation(requested: str, model_class, device, dtype) -> str:
    """The attention kernel for `model_class` on `device`.

    `auto`: flash_attention_2 where installed, supported by the architecture and the GPU, and
    the weights are half precision (the kernel has no fp32 path); else sdpa where the
    architecture supports it; else eager. An explicit choice is checked the same way.
    """
    import torch

    supports_flash = bool(getattr(model_class, "_supports_flash_attn", False)
                          or getattr(model_class, "_supports_flash_attn_2", False))
    supports_sdpa = bool(getattr(model_class, "_supports_sdpa", False))
    flash_ok = supports_flash and flash_attention_usable(device) and dtype in (torch.float16, torch.bfloat16)
    if requested == "auto":
        if flash_ok:
            return "flash_attention_2"
        return "sdpa" if supports_sdpa else "eager"
    if requested == "flash_attention_2" and not flash_ok:
        raise ConfigError(
            f"model.attn_implementation is flash_attention_2 but it cannot run here ({model_class.__name__}, "
            f"{device.type}, {str(dtype).removeprefix('torch.')}): it needs `pip install flash-attn`, an "
            f"Ampere or newer GPU and fp16/bf16 weights; set model.attn_implementation=auto")
    if requested == "sdpa" and not supports_sdpa:
        raise ConfigError(f"{model_class.__name__} does not support sdpa attention; "
                          f"set model.attn_implementation=auto or eager")
    return requested


@dataclass(frozen=True)
class MemoryInfo:
    """Free and total memory of the device training would use."""

    device_type: str
    """cuda, mps or cpu."""
    device_name: str
    """GPU name, or `CPU (N cores)`."""
    free_bytes: int
    total_bytes: int


def memory_info(device=None) -> MemoryInfo:
    """Free/total memory of `device` (default: the `auto` device). RAM for CPU and MPS."""
    import psutil
    import torch

    device = device if device is not None else resolve_device("auto")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return MemoryInfo("cuda", torch.cuda.get_device_name(device), int(free), int(total))
    ram = psutil.virtual_memory()
    # MPS shares system RAM with the CPU.
    name = "Apple MPS (unified memory)" if device.type == "mps" else f"CPU ({available_cpu_cores()} cores)"
    return MemoryInfo(device.type, name, int(ram.available), int(ram.total))


def bitsandbytes_usable(device) -> tuple[bool, str]:
    """(usable, reason): bitsandbytes is installed and has a backend for `device`."""
    if device.type == "mps":
        return False, "bitsandbytes has no Apple MPS backend"
    if importlib.util.find_spec("bitsandbytes") is None:
        return False, "bitsandbytes is not installed (`pip install bitsandbytes`)"
    return True, ""
