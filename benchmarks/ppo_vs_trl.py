"""Time per PPO update and peak memory: our trainer against TRL 1.12.0's PPO, and against the raw
passes an update needs.

    python benchmarks/ppo_vs_trl.py [--updates 8] [--warmup 2] [--strict]

Setting (the same for both): a demo-sized GPT-2 (4 layers, hidden 128, built locally with random
weights), 8 prompts per update, 32-token answers sampled at temperature 0.7, 4 PPO epochs over one
mini-batch, LoRA r=8 on c_attn/c_proj/c_fc, the reference policy through the disabled adapter,
one CPU thread.

- ours: `PPOTrainer` with the real safety guard and multi-objective reward; a null tracker and no
  audit log (TRL logs nothing either).
- trl:  `trl.experimental.ppo.PPOTrainer` (TRL 1.12.0, the last release with PPO) with its own
  design: a separate value model and a reward model (both sequence classifiers of the same
  tiny model). TRL is not a dependency: install it for the benchmark only, e.g.
      pip install --no-deps --target .bench/trl trl==1.12.0 -c constraints-cpu.txt
      pip install --target .bench/trl-deps "datasets>=4.7" pandas -c <pinned versions of the venv>
  (folders given by --trl-path are appended to sys.path, so the venv's own packages win).
- raw:  the passes an update needs, timed alone on our bundle: generate, one policy and one
  reference forward without grad, then 4 x (forward, backward, optimizer step).

Each side runs in its own subprocess, so its peak RSS (ru_maxrss) is its own. Targets (from the
issue): ours <= 0.5x TRL's time per update, <= 1.0x TRL's peak RSS, <= 1.3x the raw passes.
`--strict` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH, ANSWER_TOKENS, EPOCHS, LORA_R, TEMPERATURE, LEARNING_RATE = 8, 32, 4, 8, 0.7, 1e-4
LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]
TEMPLATE = "Patient question: {prompt}\nClinician answer:"  # the demo entry's template, used by both
PROMPTS = [
    "I have chest pain going to my left arm and I am sweating. What should I do?",
    "What is the most paracetamol I can take in a day?",
    "Can I take ibuprofen while I am on warfarin?",
    "My child has a fever and a rash that does not fade under a glass.",
    "I have had a sudden, very bad headache for an hour.",
    "Is amoxicillin safe if I am allergic to penicillin?",
    "My blood pressure is 185/125 and I feel confused.",
    "How should I start metformin for type 2 diabetes?",
]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def build_model(directory: Path) -> Path:
    from clinical_rlhf.models.tiny import build_tiny_model

    return build_tiny_model("gpt2", directory, vocab_size=2048, hidden=128, layers=4, heads=4, seed=0)


def our_config(model_dir: Path, runs_dir: Path, iterations: int):
    from clinical_rlhf.config import config_from_mapping

    return config_from_mapping({
        "model": {"name": "clinical-demo", "path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"lora_r": LORA_R, "lora_alpha": 2 * LORA_R, "lora_dropout": 0.0},
        "training": {"runs_dir": str(runs_dir), "run_name": "bench", "num_iterations": iterations,
                     "torch_threads": 1, "checkpoint": {"save_frequency": 10**6},
                     "ppo": {"batch_size": BATCH, "mini_batch_size": BATCH, "micro_batch_size": BATCH,
                             "ppo_epochs": EPOCHS, "max_new_tokens": ANSWER_TOKENS, "temperature": TEMPERATURE,
                             "learning_rate": LEARNING_RATE, "target_kl": None}},
        # random-weight text is sometimes vetoed; keep the rules evaluated but never stopping
        "safety": {"max_unsafe_ratio": 1.0, "audit": {"enabled": False}},
        "monitoring": {"alerts": [{"name": "safety_violation", "condition": "unsafe_ratio > 1.0",
                                   "severity": "critical", "action": "emergency_stop"},
                                  {"name": "training_divergence", "condition": "kl > 10.0",
                                   "severity": "warning", "action": "early_stop_epoch"}]},
    }, source="benchmark")


class NullTracker:
    def log_params(self, cfg): pass
    def log_metrics(self, step, metrics): pass
    def log_event(self, step, kind, severity, message, **details): pass
    def log_alerts(self, step, fired): pass
    def log_checkpoint(self, step, path, kind, seconds): pass


def run_ours(model_dir: Path, warmup: int, updates: int) -> dict:
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.safety import SafetyGuard

    cfg = our_config(model_dir, Path(tempfile.mkdtemp()), warmup + updates)
    stamps: list[float] = []
    trainer = PPOTrainer(cfg, build_policy(cfg), SafetyGuard.from_config(cfg), MultiObjectiveReward.from_config(cfg),
                         NullTracker(), train_prompts=PROMPTS, callbacks=[lambda step, m: stamps.append(time.perf_counter())])
    stamps.append(time.perf_counter())  # no eval_prompts: no held-out evaluation in a timing run
    trainer.train()
    return {"per_update": [b - a for a, b in zip(stamps, stamps[1:])][warmup:], "peak_rss_mib": peak_rss_mib()}


def run_trl(model_dir: Path, warmup: int, updates: int, trl_path: list[str]) -> dict:
    sys.path.extend(trl_path)
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            stamps.append(time.perf_counter())

        def on_step_end(self, *args, **kwargs):
            stamps.append(time.perf_counter())

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    # A list of rows serves TRL's DataLoader as well as a `datasets.Dataset` (it only needs len and
    # indexing) and skips dataset fingerprinting, which is not part of an update anyway.
    dataset = [{"input_ids": tokenizer(TEMPLATE.format(prompt=p))["input_ids"]} for p in PROMPTS]
    args = PPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        num_mini_batches=1, num_ppo_epochs=EPOCHS, response_length=ANSWER_TOKENS, temperature=TEMPERATURE,
        local_rollout_forward_batch_size=BATCH, total_episodes=BATCH * (warmup + updates), learning_rate=LEARNING_RATE,
        stop_token="eos", missing_eos_penalty=1.0, num_sample_generations=0, report_to="none", save_strategy="no",
        use_cpu=True, seed=0, logging_steps=10**6, disable_tqdm=True)
    trainer = PPOTrainer(
        args=args, processing_class=tokenizer, model=AutoModelForCausalLM.from_pretrained(model_dir), ref_model=None,
        reward_model=AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1),
        value_model=AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1),
        train_dataset=dataset, eval_dataset=dataset, callbacks=[Stamp()],
        peft_config=LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0, target_modules=LORA_TARGETS,
                               task_type="CAUSAL_LM"))
    trainer.train()
    return {"per_update": [b - a for a, b in zip(stamps, stamps[1:])][warmup:], "peak_rss_mib": peak_rss_mib()}


def run_raw(model_dir: Path, warmup: int, updates: int) -> dict:
    import torch

    from clinical_rlhf.models import build_policy
    from clinical_rlhf.rl.rollout import encode_prompts

    cfg = our_config(model_dir, Path(tempfile.mkdtemp()), 1)
    bundle = build_policy(cfg).eval()
    optimizer = torch.optim.AdamW(bundle.trainable_parameters(), lr=LEARNING_RATE)
    query_ids, query_mask = encode_prompts(bundle, PROMPTS, 200)
    parts: dict[str, list[float]] = {"generate": [], "forward_no_grad": [], "forward_backward_step": []}
    for repetition in range(warmup + updates):
        started = time.perf_counter()
        with torch.no_grad():
            sequences = bundle.model.generate(input_ids=query_ids, attention_mask=query_mask, do_sample=True,
                                              temperature=TEMPERATURE, top_k=0, max_new_tokens=ANSWER_TOKENS,
                                              pad_token_id=bundle.tokenizer.pad_token_id)
        generated = time.perf_counter()
        mask = torch.cat([query_mask, torch.ones_like(sequences[:, query_ids.shape[1]:])], dim=1)
        with torch.no_grad():
            bundle.forward(sequences, mask)
            with bundle.reference():
                bundle.logits(sequences, mask)
        scored = time.perf_counter()
        for _ in range(EPOCHS):
            logits, values = bundle.forward(sequences, mask)
            (logits.float().mean() + values.mean()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        done = time.perf_counter()
        if repetition >= warmup:
            parts["generate"].append(generated - started)
            parts["forward_no_grad"].append(scored - generated)
            parts["forward_backward_step"].append(done - scored)
    totals = [sum(values) for values in zip(*parts.values())]
    return {"per_update": totals, "parts": {k: statistics.median(v) for k, v in parts.items()},
            "peak_rss_mib": peak_rss_mib()}


def child(side: str, model_dir: Path, warmup: int, updates: int, trl_path: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    runners = {"ours": lambda: run_ours(model_dir, warmup, updates), "raw": lambda: run_raw(model_dir, warmup, updates),
               "trl": lambda: run_trl(model_dir, warmup, updates, trl_path)}
    print("RESULT " + json.dumps(runners[side]()))


def spawn(side: str, model_dir: Path, options: argparse.Namespace) -> dict | None:
    command = [sys.executable, __file__, "--child", side, "--model-dir", str(model_dir), "--warmup", str(options.warmup),
               "--updates", str(options.updates), "--trl-path", options.trl_path]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        print(f"[{side}] failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1].removeprefix("RESULT "))


def report(results: dict[str, dict | None]) -> bool:
    """Print the table and the targets; True when every measurable target is met."""
    median = {side: statistics.median(r["per_update"]) for side, r in results.items() if r}
    print(f"\nPPO update: batch {BATCH}, {ANSWER_TOKENS}-token answers, {EPOCHS} epochs, 1 mini-batch, LoRA r={LORA_R}, "
          f"1 CPU thread, median over the measured updates")
    print(f"{'side':<6}{'s / update':>12}{'peak RSS MiB':>15}")
    for side, result in results.items():
        if result:
            print(f"{side:<6}{median[side]:>12.3f}{result['peak_rss_mib']:>15.0f}")
    if results.get("raw"):
        parts = ", ".join(f"{k} {v:.3f}s" for k, v in results["raw"]["parts"].items())
        print(f"raw passes: {parts}")
    checks = []
    if "ours" in median and "raw" in median:
        checks.append(("time vs raw passes", median["ours"] / median["raw"], 1.3))
    if "ours" in median and "trl" in median:
        checks.append(("time vs TRL", median["ours"] / median["trl"], 0.5))
        checks.append(("peak RSS vs TRL", results["ours"]["peak_rss_mib"] / results["trl"]["peak_rss_mib"], 1.0))
    for name, ratio, target in checks:
        print(f"{name:<20} {ratio:5.2f}x  (target <= {target}x)  {'ok' if ratio <= target else 'MISSED'}")
    if "trl" not in median:
        print("TRL not measured: install trl==1.12.0 into .bench/trl (see this file's docstring)")
    return all(ratio <= target for _, ratio, target in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=8, help="measured updates per side")
    parser.add_argument("--warmup", type=int, default=2, help="updates run before measuring")
    parser.add_argument("--trl-path", default=".bench/trl:.bench/trl-deps", help="folders holding TRL and its deps")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", choices=("ours", "trl", "raw"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    trl_path = [str(Path(p).resolve()) for p in options.trl_path.split(":") if p]
    if options.child:
        child(options.child, options.model_dir, options.warmup, options.updates, trl_path)
        return
    with tempfile.TemporaryDirectory() as directory:
        model_dir = build_model(Path(directory) / "model")
        has_trl = any((Path(p) / "trl").is_dir() for p in trl_path)
        sides = ["raw", "ours"] + (["trl"] if has_trl else [])
        results = {side: spawn(side, model_dir, options) for side in sides}
    met = report(results)
    if options.strict and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
