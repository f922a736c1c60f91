"""Device, dtype and attention choices on this (CPU) machine, and their error messages."""

from __future__ import annotations

import pytest
import torch

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.models import hardware


def test_auto_device_and_dtype_on_cpu() -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this test describes a CPU-only machine")
    device = hardware.resolve_device("auto")
    assert device.type == "cpu"
    assert hardware.resolve_dtype("auto", device) is torch.float32
    assert hardware.resolve_dtype("bfloat16", device) is torch.bfloat16


def test_missing_cuda_is_a_config_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        hardware.resolve_device("cuda")


class _NoSdpa:
    _supports_sdpa = False


class _Sdpa:
    _supports_sdpa = True
    _supports_flash_attn = True


def test_attention_falls_back_sdpa_then_eager() -> None:
    cpu = torch.device("cpu")
    assert hardware.resolve_attn_implementation("auto", _Sdpa, cpu, torch.float32) == "sdpa"
    assert hardware.resolve_attn_implementation("auto", _NoSdpa, cpu, torch.float32) == "eager"
    assert hardware.resolve_attn_implementation("eager", _Sdpa, cpu, torch.float32) == "eager"


def test_impossible_attention_choices_say_why() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="flash_attention_2 but it cannot run here"):
        hardware.resolve_attn_implementation("flash_attention_2", _Sdpa, cpu, torch.float16)
    with pytest.raises(ConfigError, match="does not support sdpa"):
        hardware.resolve_attn_implementation("sdpa", _NoSdpa, cpu, torch.float32)


def test_memory_info_reports_this_machine() -> None:
    info = hardware.memory_info(torch.device("cpu"))
    assert info.device_type == "cpu"
    assert 0 < info.free_bytes <= info.total_bytes
    assert hardware.available_cpu_cores() >= 1
