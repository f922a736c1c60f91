"""The runtime's single-process semantics and its refusals, the shipped accelerate configs, the
prompt shards, per-rank RNG on resume, and the update's independence from the micro-batch cut."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.rl.distributed import Distributed, derived_seed, launcher_strategy

REPO = Path(__file__).resolve().parent.parent.parent
ACCELERATE_CONFIGS = {"ddp.yaml": "MULTI_GPU", "deepspeed_zero2.yaml": "DEEPSPEED",
                      "deepspeed_zero3_offload.yaml": "DEEPSPEED", "fsdp.yaml": "FSDP"}


def test_one_process_collectives_are_the_identity() -> None:
    world = Distributed.single()
    assert (world.world_size, world.rank, world.is_main, world.is_distributed) == (1, 0, True, False)
    assert torch.equal(world.sum(torch.tensor([1.5, 2.0])), torch.tensor([1.5, 2.0]))
    assert world.sum_floats({"a": 1.0}) == {"a": 1.0}
    assert world.gather("x") == ["x"] and torch.equal(world.gather_tensor(torch.arange(3)), torch.arange(3))
    assert world.broadcast({"k": 1}) == {"k": 1} and world.any(True) and not world.any(False)
    assert world.min_int(3) == 3 and world.shard(8) == range(0, 8)
    assert world.replicas_agree([torch.ones(2)])
    with world.main_process_first():
        pass


def test_shards_are_contiguous_and_refuse_an_uneven_split() -> None:
    assert Distributed(world_size=2, rank=1, strategy="ddp").shard(8) == range(4, 8)
    with pytest.raises(ConfigError, match=r"training.ppo.batch_size = 6 does not split evenly over 4 processes; "
                                          r"set it to a multiple of 4"):
        Distributed(world_size=4, rank=0, strategy="ddp").shard(6)


def test_the_prompt_sampler_shards_the_same_global_batch() -> None:
    from clinical_rlhf.rl.prompts import PromptSampler

    prompts = [f"p{i}" for i in range(10)]
    whole = PromptSampler(prompts, seed=3)
    halves = [PromptSampler(prompts, seed=3) for _ in range(2)]
    for _ in range(4):  # crosses an epoch boundary (10 prompts, batches of 4)
        batch = whole.next_batch(4)
        shards = [sampler.next_shard(4, Distributed(world_size=2, rank=r).shard(4)) for r, sampler in enumerate(halves)]
        assert shards[0] + shards[1] == batch
    assert whole.state_dict() == halves[0].state_dict() == halves[1].state_dict()


def test_launcher_variables_select_the_strategy() -> None:
    assert launcher_strategy({}) == "single"
    assert launcher_strategy({"WORLD_SIZE": "2"}) == "ddp"
    assert launcher_strategy({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}) == "fsdp"
    assert launcher_strategy({"WORLD_SIZE": "4", "ACCELERATE_USE_DEEPSPEED": "true"}) == "deepspeed"


def test_deepspeed_must_be_installed_and_recent_enough(monkeypatch) -> None:
    """Checked before the model loads; an older DeepSpeed would ignore the caller-owned gradient
    accumulation silently and train on the last micro-batch of each mini-batch only."""
    from clinical_rlhf.rl.distributed import require_deepspeed

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "deepspeed"
                        else find_spec(name, *rest))
    with pytest.raises(ConfigError, match=r"needs DeepSpeed, which is not installed; install it with "
                                          r"pip install 'clinical-rlhf\[distributed\]'"):
        require_deepspeed()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: object())
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.19.3")
    with pytest.raises(ConfigError, match=r"needs DeepSpeed >= 0.19.4, found 0.19.3; upgrade with"):
        require_deepspeed()
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.19.10")
    require_deepspeed()


@pytest.mark.parametrize("name", sorted(ACCELERATE_CONFIGS))
def test_shipped_accelerate_configs_are_valid_for_accelerate(name) -> None:
    """Top-level keys through accelerate's own loader (it rejects unknown ones); nested keys must
    be options `accelerate launch` knows (it ignores unknown ones silently)."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    path = REPO / "config" / "accelerate" / name
    config = ClusterConfig.from_yaml_file(str(path))
    assert str(config.distributed_type).split(".")[-1] == ACCELERATE_CONFIGS[name]
    assert config.mixed_precision in ("no", "bf16") and not config.use_cpu
    options = {action.dest for action in launch_command_parser()._actions}
    raw = yaml.safe_load(path.read_text())
    for section in ("deepspeed_config", "fsdp_config"):
        unknown = set(raw.get(section, {})) - options
        assert not unknown, f"{name}: {section} keys accelerate launch ignores: {unknown}"
    if "deepspeed_config" in raw:
        assert raw["deepspeed_config"]["zero_stage"] == (2 if "zero2" in name else 3)
        offload = raw["deepspeed_config"]["offload_param_device"]
        assert offload == ("cpu" if "offload" in name else "none")


def test_the_plan_names_only_shipped_configs() -> None:
    from clinical_rlhf.models.plan import STRATEGIES

    for strategy in STRATEGIES.values():
        if strategy.config_file:
            assert (REPO / strategy.config_file).is_file(), strategy.config_file


def test_resume_restores_own_rng_or_reseeds_when_the_world_size_changed() -> None:
    from clinical_rlhf.rl.checkpoint import RESEED_STREAM, capture_rng_state, restore_rank_rng_state

    torch.manual_seed(1)
    first = capture_rng_state()
    torch.manual_seed(2)
    second = capture_rng_state()
    state = {"rng": first, "rng_per_rank": [first, second], "iteration": 6}
    assert restore_rank_rng_state(state, rank=1, world_size=2, seed=5) == "restored"
    assert torch.equal(torch.get_rng_state(), second["torch"])
    assert restore_rank_rng_state({"rng": first, "iteration": 6}, rank=0, world_size=1, seed=5) == "restored"
    assert torch.equal(torch.get_rng_state(), first["torch"])  # a checkpoint from before per-rank streams
    how = restore_rank_rng_state(state, rank=2, world_size=4, seed=5)
    assert how.startswith("re-seeded: the checkpoint was written by 2 process(es), this run has 4")
    draw = torch.rand(3)
    torch.manual_seed(derived_seed(5, RESEED_STREAM, 2, 6))
    assert torch.equal(draw, torch.rand(3))


def test_global_whitening_is_masked_whitening_for_one_process() -> None:
    from clinical_rlhf.rl.losses import masked_whiten

    values = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    mask = (torch.arange(7) < torch.tensor([[7], [3], [5], [1], [6]])).float()
    assert torch.equal(masked_whiten(values, mask, sum_over=Distributed.single().sum), masked_whiten(values, mask))


def test_the_update_does_not_depend_on_how_a_mini_batch_is_cut(tiny_gpt2_config) -> None:
    """Answers of 1 to 8 tokens: the gradient is the mini-batch's token mean whether it is
    accumulated over micro-batches of 2 or taken in one piece of 8. (Under the former
    answer-weighted mean of micro-batch token means the two differ by 1.0e-2, a fifth of the
    largest weight change, 4.8e-2: measured.)"""
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.rl.experience import make_experience
    from clinical_rlhf.rl.rollout import generate, score
    from clinical_rlhf.rl.memory import MicroBatchSize
    from clinical_rlhf.rl.update import ppo_update
    from clinical_rlhf.seeding import seed_everything

    seed_everything(0)
    bundle = build_policy(tiny_gpt2_config)
    ppo = tiny_gpt2_config.training.ppo.model_copy(update={"mini_batch_size": 8, "ppo_epochs": 1})
    rollout = generate(bundle, [f"question {i} about a rash" for i in range(8)], max_new_tokens=8, temperature=1.0,
                       top_p=1.0, max_prompt_tokens=64)
    rollout.response_mask = (torch.arange(rollout.response_mask.shape[1]) < torch.arange(1, 9).unsqueeze(1)).float()
    score(bundle, rollout, 1.0, 8)
    experience, _ = make_experience(rollout, torch.linspace(-1, 1, 8), torch.zeros(8), kl_coef=0.05, multiplier=None,
                                    ppo=ppo)
    start = bundle.trainable_state_dict()
    moved = {}
    for micro in (8, 2):
        bundle.load_trainable_state_dict(start)
        optimizer = torch.optim.SGD(bundle.trainable_parameters(), lr=1.0)  # weight change = -(clipped) gradient
        ppo_update(bundle, optimizer, experience, ppo=ppo, temperature=1.0, micro_batch=MicroBatchSize(micro),
                   generator=torch.Generator().manual_seed(0))
        moved[micro] = {k: v - start[k] for k, v in bundle.trainable_state_dict().items()}
    largest = max(moved[8][k].abs().max().item() for k in start)
    assert largest > 1e-3
    assert max((moved[8][k] - moved[2][k]).abs().max().item() for k in start) < 1e-6 * max(1.0, largest)


def test_a_quantized_load_goes_to_this_ranks_gpu(monkeypatch) -> None:
    """`model.device: cuda` under `accelerate launch`: each rank's GPU (LOCAL_RANK), not GPU 0
    for all; an explicit index and the CPU path stay as they are. (No GPU needed: only the map.)"""
    from clinical_rlhf.models.factory import _device_map

    assert _device_map(torch.device("cpu")) == {"": "cpu"}
    assert _device_map(torch.device("cuda", 3)) == {"": 3}
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _device_map(torch.device("cuda")) == {"": 1}
    monkeypatch.delenv("LOCAL_RANK")
    assert _device_map(torch.device("cuda")) == {"": 0}
