"""Multi-GPU memory plan: shapes against the registry and peft, each term against hand-computed
bytes, the recommendation and the refusal, and `clinical-rlhf plan --model ... --gpus N`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clinical_rlhf.cli import app
from clinical_rlhf.errors import ModelNotFoundError
from clinical_rlhf.models import get_model_entry, list_model_entries
from clinical_rlhf.models.memory import GIB
from clinical_rlhf.models.plan import (ARCHITECTURES, STRATEGIES, Architecture, activation_bytes, make_plan, option,
                                       refusal, rollout_bytes, trainable_parameters)

MEDITRON_70B = get_model_entry("meditron-70b")


def test_every_registered_model_has_a_shape_that_reproduces_its_parameter_count() -> None:
    for entry in list_model_entries():
        counted = ARCHITECTURES[entry.id].parameter_count()
        if entry.id == "biomedlm":  # the registry holds the card's rounded 2.7B
            assert counted == 2_594_247_680  # GPT-2 with its config.json, counted on the meta device
        else:
            assert counted == entry.parameters, entry.id


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_lora_parameter_count_matches_the_adapters_peft_builds(tiny_model_dir, architecture) -> None:
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.models.tiny import tiny_model_config

    bundle = build_policy(tiny_model_config(tiny_model_dir(architecture)))  # LoRA r=4, shared value head
    config = bundle.model.config
    shape = Architecture(architecture, config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                         getattr(config, "num_key_value_heads", config.num_attention_heads),
                         getattr(config, "intermediate_size", None) or 4 * config.hidden_size, config.vocab_size)
    built = sum(parameter.numel() for parameter in bundle.trainable_parameters())
    assert built == trainable_parameters(shape, 4)


def test_meditron_70b_in_4bit_on_one_replica_per_gpu_term_by_term() -> None:
    """Hand-computed: s = 512 tokens, micro-batch 8, LoRA r = 16, gradient checkpointing."""
    shape = ARCHITECTURES["meditron-70b"]
    ddp = option(MEDITRON_70B, shape, STRATEGIES["ddp"], "nf4", gpus=4, micro_batch=8, seq_len=512, lora_rank=16,
                 checkpointing=True)
    # 32000 x 8192 x 2 embedding weights in fp32, the other 68,452,360,192 at 4.5 bits
    assert ddp.weights == 524_288_000 * 4 + 38_504_452_608
    # per layer 16 x [(8192+8192) + 2 x (8192+1024) + (8192+8192) + 2 x (8192+28672) + (28672+8192)] = 2,588,672
    assert trainable_parameters(shape, 16) == 80 * 2_588_672 + 8193
    assert ddp.trainable == (80 * 2_588_672 + 8193) * 16
    # 80 x 2·512·8·8192 checkpointed inputs + 512·8·(17·8192 + 8·28672) + 3·8·512·32000·4 logits
    assert ddp.activations == 5_368_709_120 + 1_509_949_440 + 1_572_864_000
    # KV cache 2·80·8·128·8·512·2 beside the kept logits 8·512·32000·4 beats those stacked, 1,048,576,000
    assert ddp.rollout == 1_342_177_280 + 524_288_000
    assert ddp.total == 40_601_604_608 + 3_313_631_248 + 1_073_741_824 + 8_451_522_560
    assert ddp.total / GIB == pytest.approx(49.77, abs=0.01)


def test_sharding_divides_what_it_shards() -> None:
    shape = ARCHITECTURES["meditron-70b"]
    common = dict(gpus=4, micro_batch=1, seq_len=512, lora_rank=16, checkpointing=True)
    trainable = trainable_parameters(shape, 16)
    zero2 = option(MEDITRON_70B, shape, STRATEGIES["zero2"], "fp16", **common)
    assert zero2.weights == 2 * MEDITRON_70B.parameters  # ZeRO-2 leaves the frozen base whole
    assert zero2.trainable == trainable * 2 + trainable * 16 // 4
    fsdp = option(MEDITRON_70B, shape, STRATEGIES["fsdp"], "fp16", **common)
    assert fsdp.weights == 2 * MEDITRON_70B.parameters // 4 + 2 * shape.layer_parameters() * 2
    offload = option(MEDITRON_70B, shape, STRATEGIES["zero3_offload"], "fp16", **common)
    assert offload.weights == 2 * shape.layer_parameters() * 2 and offload.trainable == 0
    assert offload.host == 2 * MEDITRON_70B.parameters + trainable * 18


def test_checkpointing_and_batch_move_activations_as_documented() -> None:
    shape = ARCHITECTURES["biomistral-7b"]
    full = activation_bytes(shape, 4, 256, checkpointing=False)
    kept = activation_bytes(shape, 4, 256, checkpointing=True)
    logits = 3 * 4 * 256 * 32000 * 4
    per_layer = 256 * 4 * (17 * 4096 + 8 * 14336)
    assert full == 32 * per_layer + logits
    assert kept == 32 * 2 * 256 * 4 * 4096 + per_layer + logits
    # a small KV cache (2·32·8·128·2·100·2) beside the kept logits: more than those stacked
    assert rollout_bytes(shape, 2, 100) == 26_214_400 + 2 * 100 * 32000 * 4
    assert rollout_bytes(shape, 2, 100) > 2 * 2 * 100 * 32000 * 4


def test_recommendations_and_refusals() -> None:
    on_four = make_plan(MEDITRON_70B, gpus=4, gpu_gib=80).recommended
    assert (on_four.strategy.name, on_four.precision, on_four.micro_batch, on_four.gradient_checkpointing) == \
        ("ddp", "nf4", 8, True)
    seven = make_plan(get_model_entry("biomistral-7b"), gpus=1, gpu_gib=24).recommended
    assert (seven.strategy.name, seven.precision, seven.micro_batch) == ("single", "fp16", 8)
    small = make_plan(MEDITRON_70B, gpus=1, gpu_gib=24)
    assert small.recommended is None
    sentence = refusal(small)
    assert sentence.startswith("meditron-70b does not fit on 1 x 24 GiB: the smallest configuration the plan "
                               "recommends (one GPU, nf4, micro-batch 1, gradient checkpointing on) needs 42.9 GiB")
    assert "it would fit on GPUs of at least 51 GiB" in sentence
    assert "DeepSpeed ZeRO-3 + CPU offload would run it (config/accelerate/deepspeed_zero3_offload.yaml" in sentence
    assert "moves the 128.5 GiB of 16-bit weights over PCIe (about 6 s at 25 GB/s)" in sentence
    assert "more GPUs do not help" in refusal(make_plan(MEDITRON_70B, gpus=2, gpu_gib=24))
    assert "4-bit (--precision nf4) may fit" in refusal(make_plan(MEDITRON_70B, gpus=2, gpu_gib=80,
                                                                   precisions=("fp16",)))


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="gpus must be at least 1"):
        make_plan(MEDITRON_70B, gpus=0, gpu_gib=80)
    with pytest.raises(ValueError, match="gpu_gib must be positive"):
        make_plan(MEDITRON_70B, gpus=1, gpu_gib=0)


def _plan(*args: str):
    return CliRunner().invoke(app, ["plan", *args], env={"COLUMNS": "250"})


def test_plan_cli_prints_the_arithmetic_and_the_launch_command() -> None:
    result = _plan("--model", "meditron-70b", "--gpus", "4", "--gpu-memory", "80")
    assert result.exit_code == 0, result.output
    assert "recommended: DDP, nf4, micro-batch 8, gradient checkpointing on" in result.output
    for term in ("frozen weights       37.8 GiB", "LoRA + value head     3.1 GiB", "per GPU              49.8 GiB"):
        assert term in result.output
    assert ("launch: accelerate launch --config_file config/accelerate/ddp.yaml --num_processes 4 main.py train "
            "--config CONFIG --set model.name=meditron-70b --set model_loading.load_in_4bit=true") in result.output
    assert "must be a multiple of 4" in result.output


def test_plan_cli_exits_1_with_what_would_fit() -> None:
    result = _plan("--model", "meditron-70b", "--gpus", "1", "--gpu-memory", "24")
    assert result.exit_code == 1
    assert "meditron-70b does not fit on 1 x 24 GiB" in result.output and "at least 51 GiB" in result.output


def test_plan_cli_keeps_the_single_device_form_and_checks_its_arguments() -> None:
    legacy = _plan("medalpaca-13b", "--device", "cuda", "--free-gib", "24")
    assert legacy.exit_code == 0 and "int8 fits" in legacy.output
    assert isinstance(_plan("--model", "meditron7b", "--gpus", "2", "--gpu-memory", "80").exception,
                      ModelNotFoundError)
    assert _plan("meditron-70b", "--model", "biogpt", "--gpus", "2", "--gpu-memory", "80").exit_code == 2
    assert _plan("--model", "biogpt", "--gpus", "2", "--gpu-memory", "80", "--precision", "fp8").exit_code == 2
    fixed = _plan("--model", "biomistral-7b", "--gpus", "2", "--gpu-memory", "24", "--batch", "2", "--precision", "nf4")
    assert fixed.exit_code == 0 and "recommended: DDP, nf4, micro-batch 2" in fixed.output
