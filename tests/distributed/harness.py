"""What the distributed tests and their worker processes share: the config, the trainer run and
the launch of N gloo processes.

Imported as `distributed.harness` by pytest and as `harness` by `worker.py` (run as a script).

Answers are made a function of (prompt, iteration) alone (`answer_per_prompt`): the real
`PolicyBundle.sample` runs once per prompt, unpadded, under a seed derived from the prompt's token ids and
the iteration. Each rank samples from its own RNG stream (`seed + rank`), so without this the
one-process and two-process runs would train on different answers and could not be compared;
with it they train on the same answers, and any difference left comes from the distributed
maths (sharding, global token means, global whitening, gradient sum, metric reduction) and
float summation order.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import zlib
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROMPTS = tuple(f"question number {i} about chest pain" for i in range(40))
ITERATIONS = 3
BATCH = 8

_spec = importlib.util.spec_from_file_location("rl_fakes", HERE.parent / "rl" / "fakes.py")
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)


def config(model_dir: str | Path, runs_dir: str | Path, run_name: str, iterations: int = ITERATIONS,
           max_unsafe_ratio: float = 1.0):
    """Mini-batch 4 of micro-batches of 2 over a global batch of 8, two epochs, a checkpoint every
    iteration; reward normalisation, whitening and the Lagrangian cost baseline all on (each is
    a batch-wide quantity the ranks must reduce). target_kl off: a KL within float noise of
    the threshold could stop one run's epoch and not the other's."""
    from clinical_rlhf.models.tiny import tiny_model_config

    ppo = {"learning_rate": 1e-2, "batch_size": BATCH, "mini_batch_size": 4, "micro_batch_size": 2, "ppo_epochs": 2,
           "max_new_tokens": 8, "missing_eos_penalty": 0.0, "target_kl": None, "reward_normalization": True}
    training = {"runs_dir": str(runs_dir), "run_name": run_name, "num_iterations": iterations, "seed": 4, "ppo": ppo,
                "checkpoint": {"save_frequency": 1, "keep_last": 5}}
    return tiny_model_config(model_dir, training=training,
                             safety={"max_unsafe_ratio": max_unsafe_ratio, "audit": {"fsync": "never"}},
                             monitoring={"alerts": []})


def answer_per_prompt(bundle, iteration_of) -> None:
    """Replace `bundle.sample` by one real `sample` call per prompt (left padding removed) seeded
    from the prompt's token ids and `iteration_of()`; its answers, logits and values re-padded to
    the batch (zeros after an answer that ended early: its mask ends at its EOS)."""
    real_sample = bundle.sample
    pad = bundle.tokenizer.pad_token_id

    def sample(input_ids, attention_mask, **kwargs):
        answers = []
        for ids, mask in zip(input_ids, attention_mask):
            prompt = ids[mask.bool()].unsqueeze(0)
            seed = zlib.crc32(prompt.cpu().numpy().tobytes()) + 1_000_003 * iteration_of()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                sequences, logits, values = real_sample(prompt, torch.ones_like(prompt), **kwargs)
            answers.append((sequences[0, prompt.shape[1]:], logits[0], values[0]))
        rows, width = len(answers), max(len(answer) for answer, _, _ in answers)
        tokens = torch.full((rows, width), pad, dtype=input_ids.dtype, device=input_ids.device)
        logits = torch.zeros(rows, width, answers[0][1].shape[-1], device=input_ids.device)
        values = torch.zeros(rows, width, device=input_ids.device)
        for row, (answer, answer_logits, answer_values) in enumerate(answers):
            tokens[row, :len(answer)] = answer
            logits[row, :len(answer)] = answer_logits
            values[row, :len(answer)] = answer_values
        return torch.cat([input_ids, tokens], dim=1), logits, values

    bundle.sample = sample


def run_trainer(cfg, distributed=None, resume=None):
    """Seed, build, train; returns (trainer, result, tracker, audit)."""
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.seeding import seed_everything

    seed_everything(cfg.training.seed)
    bundle = build_policy(cfg)
    tracker, audit = fakes.RecordingTracker(), fakes.RecordingAudit()
    trainer = PPOTrainer(cfg, bundle, fakes.LetterGuard(), fakes.VowelReward(), tracker, train_prompts=PROMPTS,
                         audit=audit, distributed=distributed)
    answer_per_prompt(bundle, lambda: trainer.iteration)
    result = trainer.train(resume=resume)
    return trainer, result, tracker, audit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(world_size: int, tasks: list[dict], out_dir: Path, timeout: float = 240.0,
           env: dict[str, str] | None = None) -> list[dict]:
    """Run `worker.py` in `world_size` gloo processes (the variables torchrun / accelerate launch
    set, plus `env`, e.g. ACCELERATE_USE_FSDP); returns each rank's report. Raises with every
    rank's stderr tail if one fails."""
    extra = dict(env or {})
    spec = out_dir / "tasks.json"
    spec.write_text(json.dumps(tasks))
    port = _free_port()
    processes = []
    for rank in range(world_size):
        env = os.environ | {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                            "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                            "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "CUDA_VISIBLE_DEVICES": "",
                            "PYTHONPATH": str(REPO / "src")} | extra
        processes.append(subprocess.Popen([sys.executable, str(HERE / "worker.py"), str(spec), str(out_dir)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:  # a rank stuck in a collective would otherwise outlive the test
        for process in processes:
            if process.poll() is None:
                process.kill()
    if any(process.returncode for process in processes):
        tails = "\n".join(f"--- rank {rank} exit {p.returncode}\n{err[-3000:]}"
                          for rank, (p, (_, err)) in enumerate(zip(processes, outputs)))
        raise AssertionError(f"a worker failed:\n{tails}")
    return [json.loads((out_dir / f"report-rank{rank}.json").read_text()) for rank in range(world_size)]


def report(name: str, trainer, result, tracker, audit, out_dir: Path, rank: int) -> dict:
    """What a run leaves for the test: weights (safetensors), metrics, audit events, status."""
    from safetensors.torch import save_file

    weights = out_dir / f"{name}-rank{rank}.safetensors"
    owner = trainer.zero or trainer.bundle  # under DeepSpeed the engine gathers the partitions
    save_file(owner.trainable_state_dict(), str(weights))
    metrics = {step: {k: v for k, v in m.items() if not k.startswith("time/")} for step, m in tracker.metrics}
    from clinical_rlhf.rl.sharding import local_numel

    frozen = [p for p in trainer.bundle.model.parameters() if not p.requires_grad]
    if frozen and hasattr(frozen[0], "ds_numel"):  # ZeRO-3: the whole size, and this rank's partition
        full, local = sum(p.ds_numel for p in frozen), sum(p.ds_tensor.numel() for p in frozen)
    else:
        full, local = sum(p.numel() for p in frozen), local_numel(frozen)
    return {"weights": str(weights), "metrics": metrics, "audit": [[e, d] for e, _, d in audit.records],
            "frozen_numel": full, "frozen_local_numel": local,
            "status": result.status, "iterations_done": result.iterations_done,
            "last_checkpoint": str(result.last_checkpoint)}


def drop_last_checkpoint(source: Path, target: Path) -> None:
    """A copy of run directory `source` as if it had stopped after iteration 2."""
    shutil.copytree(source, target)
    shutil.rmtree(target / "checkpoints" / f"iter-{ITERATIONS:06d}")
