"""DeepSpeed ZeRO (config/accelerate/deepspeed_zero2.yaml, deepspeed_zero3_offload.yaml; `rl/zero.py`):
two gloo processes with the Adam moments and gradients (ZeRO-2), and then the weights as well,
parked in host memory (ZeRO-3 with CPU offload), train the same weights as one process on the
same global batch of 8; their checkpoints (full tensors, one-process format) resume across
world sizes and strategies.

Tolerance: the one of the data-parallel test (test_equivalence.py): max |dw| <= 5e-4 and
||dw|| <= 0.1% of the update. ZeRO changes where the state lives and the order of float sums,
not the maths: the engine averages gradients over ranks and the loss is scaled by the world
size, so the sum of the loop's token-mean shares is what it steps on.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.rl.distributed import Distributed
from clinical_rlhf.rl.zero import ZeroOptions, deepspeed_config, zero_options

from . import harness
from .test_equivalence import assert_same_training
from .test_launch import assert_two_process_run, launch, write_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                reason="DeepSpeed is the optional `distributed` extra (installed with [dev])")

ZERO2 = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
         "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "none", "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "none",
         "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false", "ACCELERATE_GRADIENT_CLIPPING": "1.0",
         "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1", "ACCELERATE_MIXED_PRECISION": "no"}
ZERO3_OFFLOAD = ZERO2 | {"ACCELERATE_DEEPSPEED_ZERO_STAGE": "3", "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu",
                         "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "cpu"}


def test_zero_options_honour_the_config_and_refuse_what_is_not_done() -> None:
    assert zero_options(ZERO2, max_grad_norm=1.0) == ZeroOptions(stage=2)
    assert zero_options(ZERO3_OFFLOAD) == ZeroOptions(stage=3, offload_optimizer="cpu", offload_params="cpu")
    config = deepspeed_config(zero_options(ZERO3_OFFLOAD), max_grad_norm=0.5)
    assert config["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert config["gradient_clipping"] == 0.5 and config["managed_gradient_accumulation"] is False
    refusals = {
        "ACCELERATE_DEEPSPEED_ZERO3_INIT": ("true", r"zero3_init_flag: true is not supported"),
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": ("0", r"zero_stage 0 is not supported .* use config/accelerate/ddp.yaml"),
        "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": ("cpu", r"offload_param_device: cpu needs zero_stage: 3"),
        "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": ("nvme", r"offload_optimizer_device: nvme is not supported"),
        "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": ("4", r"gradient_accumulation_steps: 4 is not used"),
        "ACCELERATE_MIXED_PRECISION": ("fp16", r"mixed_precision: fp16 is not supported .* set mixed_precision: bf16"),
        "ACCELERATE_DEEPSPEED_CONFIG_FILE": ("ds.json", r"deepspeed_config_file is not read by the PPO trainer"),
    }
    for key, (value, message) in refusals.items():
        with pytest.raises(ConfigError, match=message):
            zero_options(ZERO2 | {key: value})
    with pytest.raises(ConfigError, match=r"gradient_clipping: 0.5 differs from training.ppo.max_grad_norm = 1.0"):
        zero_options(ZERO2 | {"ACCELERATE_GRADIENT_CLIPPING": "0.5"}, max_grad_norm=1.0)


def test_deepspeed_refuses_a_quantized_base_before_loading_it(tiny_gpt2_dir, monkeypatch) -> None:
    from clinical_rlhf.models.tiny import tiny_model_config

    for key, value in ZERO2.items():
        monkeypatch.setenv(key, value)
    zero2 = Distributed(world_size=2, strategy="deepspeed", zero_stage=2)
    zero2.check_supported(tiny_model_config(tiny_gpt2_dir))
    assert zero2.partitions_state and not zero2.shards_parameters
    assert Distributed(world_size=2, strategy="deepspeed", zero_stage=3).shards_parameters
    with pytest.raises(ConfigError, match=r"load_in_4bit/load_in_8bit cannot be used with a DeepSpeed config"):
        zero2.check_supported(tiny_model_config(tiny_gpt2_dir, model_loading={"load_in_4bit": True}))


@pytest.fixture(scope="module")
def runs(tiny_gpt2_dir, tmp_path_factory, one_process_run):
    """Two ZeRO-2 processes, then two ZeRO-3-offload processes (each: a fresh run, and a resume
    of the one-process run's iteration-2 checkpoint); ZeRO-3 offload in a single process (one
    GPU with its weights in host RAM); then one plain process resuming the ZeRO-3 run's
    iteration-2 checkpoint."""
    root = tmp_path_factory.mktemp("deepspeed")
    reports, seconds = {}, {}
    for name, env in (("zero2", ZERO2), ("zero3", ZERO3_OFFLOAD)):
        harness.drop_last_checkpoint(one_process_run["run_dir"], root / f"one-to-{name}" / "run")
        (root / f"{name}-reports").mkdir()
        started = time.perf_counter()
        reports[name] = harness.launch(2, [
            {"name": name, "model_dir": str(tiny_gpt2_dir), "runs_dir": str(root / name), "run_name": "run"},
            {"name": "resumed", "model_dir": str(tiny_gpt2_dir), "runs_dir": str(root / f"one-to-{name}"),
             "run_name": "run", "resume": "auto"},
        ], root / f"{name}-reports", env=env)
        seconds[name] = time.perf_counter() - started
    (root / "single-reports").mkdir()
    reports["single"] = harness.launch(1, [
        {"name": "zero3", "model_dir": str(tiny_gpt2_dir), "runs_dir": str(root / "single"), "run_name": "run"},
    ], root / "single-reports", env=ZERO3_OFFLOAD)
    harness.drop_last_checkpoint(root / "zero3" / "run", root / "zero3-to-one" / "run")
    zero3_to_one = harness.run_trainer(harness.config(tiny_gpt2_dir, root / "zero3-to-one", "run"), resume="auto")
    return {"root": root, "initial": one_process_run["initial"], "one": one_process_run["one"], "reports": reports,
            "zero3_to_one": zero3_to_one, "seconds": seconds}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_two_zero_processes_train_the_same_weights_as_one(runs, name):
    rank0, rank1 = (report[name] for report in runs["reports"][name])
    trainer, result, tracker, _ = runs["one"]
    assert result.status == rank0["status"] == rank1["status"] == "completed"
    assert rank0["iterations_done"] == harness.ITERATIONS
    mine = load_file(rank0["weights"])
    assert all(torch.equal(mine[k], load_file(rank1["weights"])[k]) for k in mine)  # both gathered the same
    assert_same_training(mine, trainer.bundle.trainable_state_dict(), runs["initial"], f"2 {name} processes vs 1")
    one = dict(tracker.metrics)
    for step, metrics in rank0["metrics"].items():
        assert metrics["system/world_size"] == 2.0
        for key in ("safety/unsafe_ratio", "reward/total/mean", "policy/optimizer_steps"):
            assert metrics[key] == pytest.approx(one[int(step)][key], abs=1e-12), (step, key)
        for key in ("objective/kl", "policy/loss", "policy/grad_norm", "value/loss", "policy/lr"):
            assert metrics[key] == pytest.approx(one[int(step)][key], abs=1e-4), (step, key)
    print(f"two-process {name} launch (2 tasks, imports included): {runs['seconds'][name]:.1f} s")


@pytest.mark.slow
def test_zero3_offload_in_one_process_trains_the_same_weights_as_without_deepspeed(runs):
    (report,) = runs["reports"]["single"]
    assert report["zero3"]["status"] == "completed" and report["zero3"]["world_size"] == 1
    assert_same_training(load_file(report["zero3"]["weights"]), runs["one"][0].bundle.trainable_state_dict(),
                         runs["initial"], "ZeRO-3 offload in 1 process vs 1 plain process")


@pytest.mark.slow
def test_zero3_partitions_the_frozen_base_and_zero2_does_not(runs):
    zero3 = [report["zero3"] for report in runs["reports"]["zero3"]]
    full = zero3[0]["frozen_numel"]
    assert full > 100_000
    assert sum(rank["frozen_local_numel"] for rank in zero3) == full
    assert all(rank["frozen_local_numel"] <= full // 2 + 1 for rank in zero3)
    zero2 = [report["zero2"] for report in runs["reports"]["zero2"]]
    assert [rank["frozen_local_numel"] for rank in zero2] == [full, full]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_rank_zero_alone_audits_and_writes_one_process_checkpoints(runs, name):
    rank0, rank1 = (report[name] for report in runs["reports"][name])
    assert rank1["audit"] == [] and rank1["metrics"] == {}
    events = Counter(event for event, _ in rank0["audit"])
    assert events["guard_check"] == harness.ITERATIONS * harness.BATCH and events["run_start"] == events["run_end"] == 1
    checkpoint = runs["root"] / name / "run" / "checkpoints" / "iter-000003"
    saved = load_file(checkpoint / "trainable.safetensors")
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in runs["initial"].items()}
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    one = torch.load(runs["one"][0].last_checkpoint / "optimizer.pt", weights_only=True)
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(one["param_groups"][0]["lr"])
    for index, entry in one["state"].items():  # the same moments as one process's AdamW
        assert float(optimizer["state"][index]["step"]) == float(entry["step"]) == 2 * 2 * harness.ITERATIONS
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(optimizer["state"][index][key], entry[key], atol=1e-6, rtol=1e-3), (index, key)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_a_one_process_checkpoint_resumes_under_zero(runs, name):
    rank0, _ = (report["resumed"] for report in runs["reports"][name])
    assert rank0["status"] == "completed" and list(rank0["metrics"]) == ["3"]
    assert_same_training(load_file(rank0["weights"]), runs["one"][0].bundle.trainable_state_dict(), runs["initial"],
                         f"1-process checkpoint resumed by 2 {name} processes")


@pytest.mark.slow
def test_a_zero3_checkpoint_resumes_in_one_process(runs):
    trainer, result, tracker, _ = runs["zero3_to_one"]
    assert result.status == "completed" and [step for step, _ in tracker.metrics] == [3]
    assert_same_training(trainer.bundle.trainable_state_dict(), runs["one"][0].bundle.trainable_state_dict(),
                         runs["initial"], "ZeRO-3 checkpoint resumed by 1 process")


@pytest.mark.slow
@pytest.mark.parametrize("accelerate_config, says", [
    ("deepspeed_zero2.yaml", "DeepSpeed ZeRO-2 over 2 processes (optimizer offload: none, parameter offload: none)"),
    ("deepspeed_zero3_offload.yaml",
     "DeepSpeed ZeRO-3 over 2 processes (optimizer offload: cpu, parameter offload: cpu)"),
])
def test_accelerate_launch_with_the_shipped_deepspeed_configs_trains(tmp_path, tiny_gpt2_dir, accelerate_config, says):
    """The shipped configs as they are (bf16 included) through the real launcher."""
    done = launch(write_config(tmp_path, tiny_gpt2_dir), accelerate_config=accelerate_config)
    assert_two_process_run(done, tmp_path)
    assert says in " ".join((done.stderr + done.stdout).split())
