"""Memory estimates against hand-computed values, and precision selection at the boundaries."""

from __future__ import annotations

import pytest

from clinical_rlhf.config import load_config
from clinical_rlhf.models import get_model_entry, select_precision, training_bytes
from clinical_rlhf.models.memory import GIB, weight_bytes


def test_training_bytes_follow_the_documented_formula() -> None:
    # 7e9 parameters: fp16 14e9 B, int8 7e9 B, nf4 7e9 * 4.5 / 8 = 3.9375e9 B; then * 1.2 + 1 GiB.
    assert weight_bytes(7_000_000_000, "fp16") == 14_000_000_000
    assert training_bytes(7_000_000_000, "fp16") == 16_800_000_000 + GIB
    assert training_bytes(7_000_000_000, "int8") == 8_400_000_000 + GIB
    assert training_bytes(7_000_000_000, "nf4") == 4_725_000_000 + GIB
    assert training_bytes(1_000, "fp32") == 4_800 + GIB


def test_quantized_precisions_keep_embeddings_in_fp32() -> None:
    # 8e9 parameters of which 1e9 embeddings: nf4 = 1e9 * 4 + 7e9 * 4.5 / 8 = 7.9375e9 B.
    assert weight_bytes(8_000_000_000, "nf4", 1_000_000_000) == 7_937_500_000
    assert weight_bytes(8_000_000_000, "int8", 1_000_000_000) == 11_000_000_000
    assert weight_bytes(8_000_000_000, "fp16", 1_000_000_000) == 16_000_000_000  # unquantized: no split
    entry = get_model_entry("openbiollm-8b")
    assert select_precision(entry, 64 * GIB).required_bytes["nf4"] == training_bytes(
        entry.parameters, "nf4", entry.embedding_parameters)


def test_unknown_precision_is_rejected() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        weight_bytes(10, "int3")


@pytest.mark.parametrize("free_gib, expected", [(80, "fp16"), (17.0, "int8"), (8.0, "nf4"), (5.0, None)])
def test_select_precision_takes_the_best_that_fits_on_gpu(free_gib, expected) -> None:
    entry = get_model_entry("biomistral-7b")  # 7.24e9 parameters
    choice = select_precision(entry, int(free_gib * GIB), device_type="cuda")
    assert choice.precision == expected
    assert list(choice.required_bytes) == ["fp16", "int8", "nf4"]
    if expected is None:
        assert not choice.fits
        assert "does not fit" in choice.describe() and "nf4 needs ~" in choice.describe()
    else:
        assert choice.required_bytes[expected] <= choice.free_bytes


def test_exact_boundary_fits() -> None:
    need = training_bytes(8_030_261_248, "int8")  # a bare count: no embedding split
    assert select_precision(8_030_261_248, need, device_type="cuda").precision == "int8"
    assert select_precision(8_030_261_248, need - 1, device_type="cuda").precision == "nf4"


def test_cpu_prefers_fp32_over_half_precision() -> None:
    choice = select_precision(get_model_entry("biogpt"), 64 * GIB, device_type="cpu")
    assert choice.precision == "fp32"
    assert list(choice.required_bytes) == ["fp32", "int8", "nf4"]


@pytest.mark.parametrize("precision_gib", [80, 17, 8])
def test_config_overrides_select_that_precision(precision_gib) -> None:
    choice = select_precision(get_model_entry("biomistral-7b"), precision_gib * GIB, device_type="cuda")
    cfg = load_config(None, ["model.name=biomistral-7b", *choice.config_overrides])
    assert cfg.model_loading.load_in_8bit == (choice.precision == "int8")
    assert cfg.model_loading.load_in_4bit == (choice.precision == "nf4")


def test_unknown_device_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="device_type"):
        select_precision(1000, GIB, device_type="tpu")
