"""FSDP (config/accelerate/fsdp.yaml, `rl/sharding.py`): two gloo processes holding half of the
model each train the same weights as one process on the same global batch of 8, and their
checkpoints (full tensors, one-process format) resume across world sizes and strategies.

Tolerance: the one of the data-parallel test (test_equivalence.py): max |dw| <= 5e-4 and
||dw|| <= 0.1% of the update, the floor Adam puts on float rounding after 3 iterations.
Sharding changes only the order of float sums (reduce-scatter instead of all-reduce, norms of
shards), not the maths.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.rl.distributed import Distributed
from clinical_rlhf.rl.sharding import FsdpOptions, fsdp_options

from . import harness
from .test_equivalence import assert_same_training
from .test_launch import assert_two_process_run, launch, write_config

FSDP = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_RESHARD_AFTER_FORWARD": "true",
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_OFFLOAD_PARAMS": "false"}


def test_fsdp_options_honour_the_config_and_refuse_what_is_not_done() -> None:
    assert fsdp_options(FSDP) == FsdpOptions(reshard_after_forward=True)
    assert fsdp_options({"FSDP_SHARDING_STRATEGY": "SHARD_GRAD_OP"}).reshard_after_forward is False
    assert fsdp_options({"FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer"}).block_classes == ("LlamaDecoderLayer",)
    with pytest.raises(ConfigError, match=r"fsdp.yaml: fsdp_offload_params: true is not supported"):
        fsdp_options(FSDP | {"FSDP_OFFLOAD_PARAMS": "true"})
    with pytest.raises(ConfigError, match=r"sharding strategy HYBRID_SHARD is not supported"):
        fsdp_options({"FSDP_SHARDING_STRATEGY": "HYBRID_SHARD"})
    with pytest.raises(ConfigError, match=r"fsdp_auto_wrap_policy SIZE_BASED_WRAP is not supported"):
        fsdp_options(FSDP | {"FSDP_AUTO_WRAP_POLICY": "SIZE_BASED_WRAP"})
    with pytest.raises(ConfigError, match=r"set it to false and set model_loading.gradient_checkpointing=true"):
        fsdp_options(FSDP | {"FSDP_ACTIVATION_CHECKPOINTING": "true"})


def test_fsdp_refuses_a_quantized_base_before_loading_it(tiny_gpt2_dir) -> None:
    from clinical_rlhf.models.tiny import tiny_model_config

    world = Distributed(world_size=2, strategy="fsdp")
    world.check_supported(tiny_model_config(tiny_gpt2_dir))
    assert world.shards_parameters and not Distributed(world_size=2, strategy="ddp").shards_parameters
    with pytest.raises(ConfigError, match=r"load_in_4bit/load_in_8bit cannot be used with config/accelerate/fsdp.yaml: "
                                          r"sharding bitsandbytes weights \(QLoRA-FSDP\) needs bnb_4bit_quant_storage"):
        world.check_supported(tiny_model_config(tiny_gpt2_dir, model_loading={"load_in_4bit": True}))


@pytest.fixture(scope="module")
def runs(tiny_gpt2_dir, tmp_path_factory, one_process_run):
    """One process; then two FSDP processes (a fresh run, and a resume of the one-process run's
    iteration-2 checkpoint); then one process resuming the FSDP run's iteration-2 checkpoint."""
    root = tmp_path_factory.mktemp("fsdp")
    initial, one = one_process_run["initial"], one_process_run["one"]
    harness.drop_last_checkpoint(one_process_run["run_dir"], root / "one-to-fsdp" / "run")
    started = time.perf_counter()
    reports = harness.launch(2, [
        {"name": "fsdp", "model_dir": str(tiny_gpt2_dir), "runs_dir": str(root / "fsdp"), "run_name": "run"},
        {"name": "one_to_fsdp", "model_dir": str(tiny_gpt2_dir), "runs_dir": str(root / "one-to-fsdp"),
         "run_name": "run", "resume": "auto"},
    ], root, env=FSDP)
    launch_seconds = time.perf_counter() - started
    harness.drop_last_checkpoint(root / "fsdp" / "run", root / "fsdp-to-one" / "run")
    fsdp_to_one = harness.run_trainer(harness.config(tiny_gpt2_dir, root / "fsdp-to-one", "run"), resume="auto")
    return {"root": root, "initial": initial, "one": one, "reports": reports, "fsdp_to_one": fsdp_to_one,
            "launch_seconds": launch_seconds}


@pytest.mark.slow
def test_two_fsdp_processes_train_the_same_weights_as_one(runs):
    rank0, rank1 = (report["fsdp"] for report in runs["reports"])
    trainer, result, tracker, _ = runs["one"]
    assert result.status == rank0["status"] == rank1["status"] == "completed"
    assert rank0["iterations_done"] == harness.ITERATIONS
    mine = load_file(rank0["weights"])
    assert all(torch.equal(mine[k], load_file(rank1["weights"])[k]) for k in mine)  # both gathered the same
    assert_same_training(mine, trainer.bundle.trainable_state_dict(), runs["initial"], "2 FSDP processes vs 1")
    one = dict(tracker.metrics)
    for step, metrics in rank0["metrics"].items():
        assert metrics["system/world_size"] == 2.0
        for key in ("safety/unsafe_ratio", "reward/total/mean", "policy/optimizer_steps"):
            assert metrics[key] == pytest.approx(one[int(step)][key], abs=1e-12), (step, key)
        for key in ("objective/kl", "policy/loss", "policy/grad_norm", "value/loss"):
            assert metrics[key] == pytest.approx(one[int(step)][key], abs=1e-4), (step, key)
    print(f"two-process FSDP launch (2 tasks, imports included): {runs['launch_seconds']:.1f} s")


@pytest.mark.slow
def test_each_rank_holds_half_of_the_frozen_base(runs):
    ranks = [report["fsdp"] for report in runs["reports"]]
    full = ranks[0]["frozen_numel"]
    assert full > 100_000
    assert [rank["frozen_local_numel"] for rank in ranks] == [full // 2, full - full // 2]


@pytest.mark.slow
def test_rank_zero_alone_audits_and_writes_full_checkpoints(runs):
    rank0, rank1 = (report["fsdp"] for report in runs["reports"])
    assert rank1["audit"] == [] and rank1["metrics"] == {}
    events = Counter(event for event, _ in rank0["audit"])
    assert events["guard_check"] == harness.ITERATIONS * harness.BATCH and events["run_start"] == events["run_end"] == 1
    checkpoint = runs["root"] / "fsdp" / "run" / "checkpoints" / "iter-000003"
    saved = load_file(checkpoint / "trainable.safetensors")
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in runs["initial"].items()}
    moments = torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"]
    assert all(type(value) is torch.Tensor for entry in moments.values() for value in entry.values())


@pytest.mark.slow
def test_an_fsdp_checkpoint_resumes_in_one_process(runs):
    trainer, result, tracker, _ = runs["fsdp_to_one"]
    assert result.status == "completed" and [step for step, _ in tracker.metrics] == [3]
    assert_same_training(trainer.bundle.trainable_state_dict(), runs["one"][0].bundle.trainable_state_dict(),
                         runs["initial"], "FSDP checkpoint resumed by 1 process")


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_under_fsdp(runs):
    rank0, _ = (report["one_to_fsdp"] for report in runs["reports"])
    assert rank0["status"] == "completed" and list(rank0["metrics"]) == ["3"]
    assert_same_training(load_file(rank0["weights"]), runs["one"][0].bundle.trainable_state_dict(), runs["initial"],
                         "1-process checkpoint resumed by 2 FSDP processes")


@pytest.mark.slow
def test_accelerate_launch_with_the_fsdp_config_trains(tmp_path, tiny_gpt2_dir):
    done = launch(write_config(tmp_path, tiny_gpt2_dir), accelerate_config="fsdp.yaml")
    assert_two_process_run(done, tmp_path)
    assert "FSDP" in done.stderr + done.stdout  # the run says it sharded
