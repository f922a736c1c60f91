"""Time per PPO update and peak memory: our trainer against TRL's PPO (with and without a frozen
garbage collector), against the raw passes an update needs, and against TRL's current online
trainer (GRPO) at equal samples.

    python benchmarks/ppo_vs_trl.py [--rounds 5] [--per-round 2] [--warmup 2] [--sides ...] [--strict]
    python benchmarks/ppo_vs_trl.py --baseline-src /tmp/base/src   # + our trainer at another revision

Setting (the same for every side): a demo-sized GPT-2 (4 layers, hidden 128, built locally with
random weights), 32-token answers sampled at temperature 0.7, LoRA r=8 on c_attn/c_proj/c_fc,
the reference policy through the disabled adapter, one CPU thread.

PPO table: 8 prompts per update, 4 PPO epochs over one mini-batch.
- raw:     the passes an update needs, timed on our bundle: sampling that keeps its logits and
           the hidden states the LM head read (`PolicyBundle.sample`: the old log-probs and
           values), one reference forward without grad, then 4 x (forward, backward, optimizer
           step). (Before the rollout kept what sampling computed, raw also held a policy forward
           without grad: the scoring pass.)
- ours:    `PPOTrainer` with the real safety guard and multi-objective reward; a null tracker
           and no audit log (TRL logs nothing either).
- trl:     `trl.experimental.ppo.PPOTrainer` (TRL 1.12.0, the last release with PPO), its own
           design: a separate value model and a reward model (sequence classifiers of the same
           tiny model), with `gc.freeze()` after the imports and the models are built. TRL's PPO
           calls `gc.collect()` twice per update; with ~630k objects tracked that is about half
           of its time, which says more about the interpreter's heap than about PPO, so this
           is the row the target is judged on.
- trl-gc:  the same without `gc.freeze()`, for information.
- trl-fused: `trl` with GPT-2's `gelu_new` in its three models swapped for torch's fused kernel
           of the same formula (`clinical_rlhf.models.kernels.fuse_gelu`), as our bundle loads
           it: the trainers compared on the same kernels, for information. (A speed-up for TRL,
           never a slow-down: the ratio against it is the stricter one.)

GRPO table: 4 prompts x 4 samples per update, one optimizer step per batch (GRPO's mu = 1),
KL to the reference with beta 0.04 (DeepSeekMath's value; TRL's default 0.0 skips the reference).
- grpo:       `trl.GRPOTrainer` of the newest TRL that installs here (1.16.0), `gc.freeze()`d,
              with a cheap Python reward function.
- ours-group: `PPOTrainer` with group-normalised advantages over the same 4 x 4 samples,
              `ppo_epochs: 1`, guard and reward as above.

TRL is not a dependency. The two releases cannot share one environment (1.12 is the last with
PPO, GRPO's current code is 1.16's), so each lives in its own folder added to the sys.path of
its own child process (the venv's own packages win):
    pip install --no-deps --target .bench/trl trl==1.12.0
    pip install --no-deps --target .bench/trl-latest trl==1.16.0
    pip install --target .bench/trl-deps "datasets==4.7.0" "pyarrow==21.0.0" "dill==0.3.8" "pandas>=2.1"
(datasets 5.2 with pyarrow 26 cannot fingerprint a dataset under this interpreter: PicklingError on
pyarrow's MonthDayNano; these pins can.)

Measurement. Every side runs in its own long-lived subprocess (its peak RSS, ru_maxrss, is its
own) that pauses at the end of each update until told to go on. After `--warmup` updates each,
the sides take turns, `--per-round` updates at a time, for `--rounds` rounds, the order rotating
each round (A B C, B C A, ...): a change of load on the shared machine hits every side alike.
Times are medians with their range (min-max) over all measured updates; each ratio is the
median (and range) of the per-round ratios of medians. Targets (from the issue): ours <= 0.5x
TRL's time per update (gc frozen), <= 1.15x the raw passes, <= 1.0x TRL's peak RSS, and faster
than GRPO per prompt. `--strict` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ANSWER_TOKENS, LORA_R, TEMPERATURE, LEARNING_RATE = 32, 8, 0.7, 1e-4
PPO_BATCH, PPO_EPOCHS = 8, 4
GROUP_PROMPTS, GROUP_SAMPLES, GRPO_BETA = 4, 4, 0.04
LORA_TARGETS = ["c_attn", "c_proj", "c_fc"]
TEMPLATE = "Patient question: {prompt}\nClinician answer:"  # the demo entry's template, used by every side
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
SIDES = {"raw": "ppo", "ours": "ppo", "ours-base": "ppo", "trl": "ppo", "trl-gc": "ppo", "trl-fused": "ppo",
         "ours-group": "grpo", "grpo": "grpo"}
"""Side -> the table it belongs to."""
TRL_FOLDERS = {"trl": ".bench/trl", "trl-gc": ".bench/trl", "trl-fused": ".bench/trl", "grpo": ".bench/trl-latest"}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# ----------------------------------------------------------------------------- the child's side


class Pacer:
    """Called at the end of every update (and once before the first): reports the seconds since
    the parent's last `go`, then blocks until the next `go`; on `stop` reports the peak RSS and
    ends the process (whatever the trainer would still do after its last update is not timed)."""

    def __init__(self) -> None:
        self.started: float | None = None

    def __call__(self, *_: object, **__: object) -> None:
        now = time.perf_counter()
        print(f"UPDATE {now - self.started}" if self.started is not None else "READY", flush=True)
        command = sys.stdin.readline().strip()
        if command != "go":
            print(f"RSS {peak_rss_mib()}", flush=True)
            os._exit(0)
        self.started = time.perf_counter()


def build_model(directory: Path) -> Path:
    from clinical_rlhf.models.tiny import build_tiny_model

    return build_tiny_model("gpt2", directory, vocab_size=2048, hidden=128, layers=4, heads=4, seed=0)


def our_config(model_dir: Path, runs_dir: Path, iterations: int, *, group: bool = False):
    from clinical_rlhf.config import config_from_mapping

    answers = GROUP_PROMPTS * GROUP_SAMPLES if group else PPO_BATCH
    ppo = {"batch_size": GROUP_PROMPTS if group else PPO_BATCH, "mini_batch_size": answers,
           "micro_batch_size": answers, "ppo_epochs": 1 if group else PPO_EPOCHS, "max_new_tokens": ANSWER_TOKENS,
           "temperature": TEMPERATURE, "learning_rate": LEARNING_RATE, "target_kl": None}
    if group:
        ppo |= {"advantage_estimator": "group", "samples_per_prompt": GROUP_SAMPLES, "init_kl_coef": GRPO_BETA,
                "adaptive_kl": False}
    return config_from_mapping({
        "model": {"name": "clinical-demo", "path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"lora_r": LORA_R, "lora_alpha": 2 * LORA_R, "lora_dropout": 0.0},
        "training": {"runs_dir": str(runs_dir), "run_name": "bench", "num_iterations": iterations,
                     "torch_threads": 1, "checkpoint": {"save_frequency": 10**6}, "ppo": ppo},
        # random-weight text is sometimes vetoed; keep the rules evaluated but never stopping
        "safety": {"max_unsafe_ratio": 1.0, "audit": {"enabled": False}},
        "monitoring": {"alerts": [{"name": "safety_violation", "condition": "unsafe_ratio > 1.0",
                                   "severity": "critical", "action": "emergency_stop"},
                                  {"name": "training_divergence", "condition": "kl > 10.0",
                                   "severity": "warning", "action": "early_stop_epoch"}]},
    }, source="benchmark")


class PacedTracker:
    """A tracker that logs nothing; `log_params`, called just before the first iteration, is the
    first pause."""

    def __init__(self, pace: Pacer) -> None:
        self.pace = pace

    def log_params(self, cfg): self.pace()
    def log_metrics(self, step, metrics): pass
    def log_event(self, step, kind, severity, message, **details): pass
    def log_alerts(self, step, fired): pass
    def log_checkpoint(self, step, path, kind, seconds): pass


def run_ours(model_dir: Path, updates: int, pace: Pacer, *, group: bool) -> None:
    from clinical_rlhf.models import build_policy
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.rl.trainer import PPOTrainer
    from clinical_rlhf.safety import SafetyGuard

    cfg = our_config(model_dir, Path(tempfile.mkdtemp()), updates, group=group)
    prompts = PROMPTS[:GROUP_PROMPTS] * 2 if group else PROMPTS
    trainer = PPOTrainer(cfg, build_policy(cfg), SafetyGuard.from_config(cfg), MultiObjectiveReward.from_config(cfg),
                         PacedTracker(pace), train_prompts=prompts, callbacks=[pace])
    trainer.train()  # no eval_prompts: no held-out evaluation in a timing run


def trl_ppo(model_dir: Path, updates: int, pace: Pacer, *, freeze_gc: bool, fuse: bool = False) -> None:
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    class Paced(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            if freeze_gc:
                gc.freeze()  # everything built so far is long-lived: the collector need not walk it again
            pace()

        def on_step_end(self, *args, **kwargs):
            pace()

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    # A list of rows serves TRL's DataLoader as well as a `datasets.Dataset` (it only needs len and
    # indexing) and skips dataset fingerprinting, which is not part of an update anyway.
    dataset = [{"input_ids": tokenizer(TEMPLATE.format(prompt=p))["input_ids"]} for p in PROMPTS]
    args = PPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=PPO_BATCH, gradient_accumulation_steps=1,
        num_mini_batches=1, num_ppo_epochs=PPO_EPOCHS, response_length=ANSWER_TOKENS, temperature=TEMPERATURE,
        local_rollout_forward_batch_size=PPO_BATCH, total_episodes=PPO_BATCH * (updates + 1),
        learning_rate=LEARNING_RATE, stop_token="eos", missing_eos_penalty=1.0, num_sample_generations=0,
        report_to="none", save_strategy="no", use_cpu=True, seed=0, logging_steps=10**6, disable_tqdm=True)
    policy = AutoModelForCausalLM.from_pretrained(model_dir)
    reward = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    if fuse:
        from clinical_rlhf.models.kernels import fuse_gelu

        for model in (policy, reward, value):
            fuse_gelu(model)
    trainer = PPOTrainer(
        args=args, processing_class=tokenizer, model=policy, ref_model=None, reward_model=reward,
        value_model=value, train_dataset=dataset, eval_dataset=dataset, callbacks=[Paced()],
        peft_config=LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0, target_modules=LORA_TARGETS,
                               task_type="CAUSAL_LM"))
    trainer.train()


def trl_grpo(model_dir: Path, updates: int, pace: Pacer) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class Paced(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            gc.freeze()
            pace()

        def on_step_end(self, *args, **kwargs):
            pace()

    def reward_length(completions, **kwargs):  # cheap, like our guard + reward (~0.5% of an update)
        return [min(len(text), 200) / 200.0 for text in completions]

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    answers = GROUP_PROMPTS * GROUP_SAMPLES
    dataset = Dataset.from_list([{"prompt": TEMPLATE.format(prompt=p)} for p in PROMPTS[:GROUP_PROMPTS]] * (updates + 1))
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=answers, gradient_accumulation_steps=1,
        steps_per_generation=1, num_generations=GROUP_SAMPLES, num_iterations=1, beta=GRPO_BETA,
        max_completion_length=ANSWER_TOKENS, temperature=TEMPERATURE, top_k=0, learning_rate=LEARNING_RATE,
        max_steps=updates + 1, report_to="none", save_strategy="no", use_cpu=True, seed=0, logging_steps=10**6,
        disable_tqdm=True, shuffle_dataset=False)
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=reward_length, args=args,
        train_dataset=dataset, processing_class=tokenizer, callbacks=[Paced()],
        peft_config=LoraConfig(r=LORA_R, lora_alpha=2 * LORA_R, lora_dropout=0.0, target_modules=LORA_TARGETS,
                               task_type="CAUSAL_LM"))
    trainer.train()


def raw_passes(model_dir: Path, updates: int, pace: Pacer) -> None:
    import torch

    from clinical_rlhf.models import build_policy
    from clinical_rlhf.rl.rollout import encode_prompts

    cfg = our_config(model_dir, Path(tempfile.mkdtemp()), 1)
    bundle = build_policy(cfg).eval()
    optimizer = torch.optim.AdamW(bundle.trainable_parameters(), lr=LEARNING_RATE)
    query_ids, query_mask = encode_prompts(bundle, PROMPTS, 200)
    pace()
    for _ in range(updates):
        sequences, _, _ = bundle.sample(query_ids, query_mask, do_sample=True, temperature=TEMPERATURE, top_k=0,
                                        max_new_tokens=ANSWER_TOKENS, pad_token_id=bundle.tokenizer.pad_token_id)
        mask = torch.cat([query_mask, torch.ones_like(sequences[:, query_ids.shape[1]:])], dim=1)
        with bundle.reference():
            bundle.logits(sequences, mask)
        for _ in range(PPO_EPOCHS):
            logits, values = bundle.forward(sequences, mask)
            (logits.float().mean() + values.mean()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        pace()


def child(side: str, model_dir: Path, updates: int) -> None:
    import torch

    folder = TRL_FOLDERS.get(side)
    if folder:
        sys.path.extend([str(Path(folder).resolve()), str(Path(".bench/trl-deps").resolve())])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pace = Pacer()
    runners: dict[str, Callable[[], None]] = {
        "raw": lambda: raw_passes(model_dir, updates, pace),
        "ours": lambda: run_ours(model_dir, updates, pace, group=False),
        "ours-base": lambda: run_ours(model_dir, updates, pace, group=False),
        "ours-group": lambda: run_ours(model_dir, updates, pace, group=True),
        "trl": lambda: trl_ppo(model_dir, updates, pace, freeze_gc=True),
        "trl-gc": lambda: trl_ppo(model_dir, updates, pace, freeze_gc=False),
        "trl-fused": lambda: trl_ppo(model_dir, updates, pace, freeze_gc=True, fuse=True),
        "grpo": lambda: trl_grpo(model_dir, updates, pace),
    }
    runners[side]()
    print("FINISHED early: the trainer ran out of updates before the parent's stop", flush=True)


# ----------------------------------------------------------------------------- the parent's side


class Side:
    """One child process and the update times it reported."""

    def __init__(self, name: str, model_dir: Path, updates: int, source: Path | None = None) -> None:
        self.name, self.times, self.rss, self.error = name, [], None, None
        command = [sys.executable, __file__, "--child", name, "--model-dir", str(model_dir), "--updates", str(updates)]
        env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
        if source is not None:  # that revision's package ahead of the installed one
            env["PYTHONPATH"] = os.pathsep.join([str(source.resolve()), env.get("PYTHONPATH", "")])
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                        text=True, env=env)

    def _read(self, prefix: str) -> str | None:
        while self.error is None:
            line = self.process.stdout.readline()
            if not line:
                self.log.seek(0)
                self.error = f"exit {self.process.wait()}:\n{self.log.read()[-3000:]}"
            elif line.startswith(prefix):
                return line[len(prefix):].strip()
        return None

    def ready(self) -> bool:
        return self._read("READY") is not None

    def run(self, updates: int) -> list[float]:
        """Let the child run `updates` updates; their seconds (fewer when it failed)."""
        done = []
        for _ in range(updates if self.error is None else 0):
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
            seconds = self._read("UPDATE ")
            if seconds is None:
                break
            done.append(float(seconds))
        return done

    def stop(self) -> None:
        if self.error is None:
            self.process.stdin.write("stop\n")
            self.process.stdin.flush()
            rss = self._read("RSS ")
            self.rss = float(rss) if rss is not None else None
        self.process.wait()


def spread(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def round_ratios(rounds: list[dict[str, list[float]]], side: str, peer: str) -> list[float]:
    return [statistics.median(r[side]) / statistics.median(r[peer]) for r in rounds if r.get(side) and r.get(peer)]


def report(sides: dict[str, Side], rounds: list[dict[str, list[float]]], divisor: dict[str, int]) -> bool:
    """Print both tables and the targets; True when every measurable target is met."""
    for table, title in (("ppo", f"PPO update: {PPO_BATCH} prompts, {ANSWER_TOKENS}-token answers, {PPO_EPOCHS} "
                                 f"epochs, 1 mini-batch, LoRA r={LORA_R}, 1 CPU thread"),
                         ("grpo", f"Online update at equal samples: {GROUP_PROMPTS} prompts x {GROUP_SAMPLES} answers, "
                                  f"1 optimizer step, beta {GRPO_BETA}")):
        names = [name for name in sides if SIDES[name] == table]
        if not names:
            continue
        print(f"\n{title}; median [min-max] over {len(rounds)} interleaved rounds")
        print(f"{'side':<11}{'s / update':>24}{'s / prompt':>12}{'peak RSS MiB':>15}")
        for name in names:
            side = sides[name]
            if side.times:
                per_prompt = statistics.median(side.times) / divisor[name]
                rss = f"{side.rss:.0f}" if side.rss else "?"
                print(f"{name:<11}{spread(side.times):>24}{per_prompt:>12.4f}{rss:>15}")
            else:
                print(f"{name:<11}  failed: {side.error}")
    checks = [("time vs raw passes", "ours", "raw", 1.15), ("time vs TRL PPO (gc frozen)", "ours", "trl", 0.5),
              ("time vs ours at baseline (info)", "ours", "ours-base", None),
              ("time vs TRL PPO (gc on, info)", "ours", "trl-gc", None),
              ("time vs TRL, fused GELU (info)", "ours", "trl-fused", None),
              ("time vs TRL GRPO per prompt", "ours-group", "grpo", 1.0)]
    print()
    met = True
    for label, side, peer, target in checks:
        ratios = round_ratios(rounds, side, peer)
        if not ratios:
            continue
        verdict = "" if target is None else (f"(target <= {target}x)  " +
                                             ("ok" if statistics.median(ratios) <= target else "MISSED"))
        met &= target is None or statistics.median(ratios) <= target
        print(f"{label:<33}{spread(ratios, 2)}x  {verdict}")
    if sides.get("ours") and sides.get("trl") and sides["ours"].rss and sides["trl"].rss:
        ratio = sides["ours"].rss / sides["trl"].rss
        met &= ratio <= 1.0
        print(f"{'peak RSS vs TRL PPO':<33}{ratio:.2f}x  (target <= 1.0x)  {'ok' if ratio <= 1.0 else 'MISSED'}")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (at least 5 for the report)")
    parser.add_argument("--per-round", type=int, default=2, help="updates each side runs per round")
    parser.add_argument("--warmup", type=int, default=2, help="updates each side runs before measuring")
    parser.add_argument("--sides", default=",".join(name for name in SIDES if name != "ours-base"),
                        help="comma-separated subset of " + ", ".join(SIDES))
    parser.add_argument("--baseline-src", type=Path,
                        help="a `src` folder of another revision (git archive <rev> src | tar -x -C DIR): adds the "
                             "side ours-base, our trainer at that revision, interleaved with the rest")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", choices=tuple(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--updates", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child, options.model_dir, options.updates)
        return
    wanted = [name.strip() for name in options.sides.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SIDES))
    if unknown:
        parser.error(f"unknown side(s) {', '.join(unknown)}; choose from {', '.join(SIDES)}")
    for name in [name for name in wanted if name in TRL_FOLDERS and not (Path(TRL_FOLDERS[name]) / "trl").is_dir()]:
        print(f"{name} not measured: install TRL into {TRL_FOLDERS[name]} (see this file's docstring)")
        wanted.remove(name)
    if "ours-base" in wanted and not options.baseline_src:
        parser.error("the side ours-base needs --baseline-src")
    if options.baseline_src and "ours-base" not in wanted:
        wanted.insert(wanted.index("ours") + 1 if "ours" in wanted else 0, "ours-base")
    updates = options.warmup + options.rounds * options.per_round
    with tempfile.TemporaryDirectory() as directory:
        model_dir = build_model(Path(directory) / "model")
        sides = {name: Side(name, model_dir, updates, options.baseline_src if name == "ours-base" else None)
                 for name in wanted}
        for side in sides.values():
            if not side.ready():
                print(f"[{side.name}] failed before its first update ({side.error})", file=sys.stderr)
        for side in sides.values():
            side.run(options.warmup)
        rounds = []
        order = list(sides)
        for number in range(options.rounds):
            rotated = order[number % len(order):] + order[:number % len(order)]
            this_round = {}
            for name in rotated:
                this_round[name] = sides[name].run(options.per_round)
                sides[name].times += this_round[name]
            rounds.append(this_round)
        for side in sides.values():
            side.stop()
    divisor = {name: GROUP_PROMPTS if SIDES[name] == "grpo" else PPO_BATCH for name in SIDES}
    met = report(sides, rounds, divisor)
    if options.strict and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
