"""Each speed-up of the PPO update measured alone: one mini-batch's forward + backward, the
previous implementation against the previous one with a single change, and all changes together.

    python benchmarks/ppo_update_parts.py [--repeats 15]

Changes (rl/update.py, rl/rollout.py, rl/losses.py, models/bundle.py):
- entropy:   no vocabulary-wide entropy pass when `entropy_coef` is 0 (the default);
- logprobs:  `logsumexp(row / T)` per row and `logit[token] / T`, no `[B, T, V]` copy of `logits / T`;
- lm-head:   logits of the answer's columns only (`logits_to_keep`), not of the prompt's;
- padding:   micro-batches cut longest first, each without its all-padding columns;
- value-hook: the value head reads the LM head's input (a forward pre-hook) instead of asking
             the model for every layer's hidden states (`output_hidden_states=True`).

Two settings on the tiny GPT-2 of benchmarks/ppo_vs_trl.py (4 layers, hidden 128, vocabulary
2048, LoRA r=8, one thread): the benchmark's (8 answers of 32 tokens in one micro-batch, no EOS,
so padding is only the prompts'), and the demo config's shape (16 answers of 10-96 tokens, as
the demo model's answers run, cut into micro-batches of 4 so that length buckets can act). The
variants run interleaved, `--repeats` times each; medians with their range. The maths is the
same in every variant (tests/rl/test_update_equivalence.py checks loss and gradients to 1e-6).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_vs_trl import LORA_R, PROMPTS, TEMPERATURE, build_model  # noqa: E402 - the same model and prompts

from clinical_rlhf.config import config_from_mapping  # noqa: E402
from clinical_rlhf.models import build_policy  # noqa: E402
from clinical_rlhf.models.bundle import position_ids_from_mask  # noqa: E402
from clinical_rlhf.rl import losses  # noqa: E402
from clinical_rlhf.rl.distributed import Distributed  # noqa: E402
from clinical_rlhf.rl.experience import make_experience  # noqa: E402
from clinical_rlhf.rl.rollout import generate, score  # noqa: E402
from clinical_rlhf.rl.update import RankMiniBatches  # noqa: E402

CHANGES = ("entropy", "logprobs", "lm-head", "padding", "value-hook")


def previous_logprobs(logits, tokens, temperature):
    """The previous `logprobs_of_tokens`: a scaled copy of the whole logits tensor first."""
    logits = logits / temperature
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.stack([torch.logsumexp(row, dim=-1) for row in logits])


def previous_forward(bundle, input_ids, attention_mask, last=None):
    """The previous `PolicyBundle.forward` (shared critic): values from `output_hidden_states`."""
    outputs = bundle.model(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=position_ids_from_mask(attention_mask), output_hidden_states=True,
                           use_cache=False, **({"logits_to_keep": last} if last else {}))
    tail = slice(-(last or 0), None)
    return outputs.logits[:, tail], bundle.value_head(outputs.hidden_states[-1][:, tail])


def variant_loss(bundle, batch, ppo, on: set[str]):
    """The update's loss with the changes in `on` applied and the others as they were before."""
    rollout, mask = batch.rollout, batch.rollout.response_mask
    width, steps = rollout.query_ids.shape[1], rollout.response_ids.shape[1]
    forward = bundle.forward if "value-hook" in on else functools.partial(previous_forward, bundle)
    if "lm-head" in on:
        logits, values = forward(rollout.input_ids, rollout.attention_mask, last=steps + 1)
        logits, values = logits[:, :steps], values[:, :steps].float()
    else:
        logits, values = forward(rollout.input_ids, rollout.attention_mask)
        logits, values = logits[:, width - 1: width - 1 + steps], values[:, width - 1: width - 1 + steps].float()
    logprob_of = losses.logprobs_of_tokens if "logprobs" in on else previous_logprobs
    logprobs = logprob_of(logits, rollout.response_ids, TEMPERATURE)
    loss, _ = losses.policy_loss(logprobs, rollout.logprobs, batch.advantages, mask, ppo.clip_range)
    if "entropy" not in on:
        loss = loss - ppo.entropy_coef * losses.masked_token_mean(losses.entropy_from_logits(logits, TEMPERATURE), mask)
    value_loss, _ = losses.value_loss(values, rollout.values, batch.returns, mask, ppo.clip_range_value)
    return loss + ppo.vf_coef * value_loss


def setting(model_dir: Path, answers: int, max_tokens: int, lengths: torch.Tensor | None, micro: int):
    cfg = config_from_mapping({
        "model": {"name": "clinical-demo", "path": str(model_dir), "device": "cpu", "dtype": "float32"},
        "model_loading": {"lora_r": LORA_R, "lora_alpha": 2 * LORA_R, "lora_dropout": 0.0},
        "training": {"runs_dir": tempfile.mkdtemp(), "ppo": {"batch_size": answers, "mini_batch_size": answers,
                                                             "micro_batch_size": micro, "max_new_tokens": max_tokens}},
    }, source="benchmark")
    bundle = build_policy(cfg)
    prompts = (PROMPTS * answers)[:answers]
    rollout = generate(bundle, prompts, max_new_tokens=max_tokens, temperature=TEMPERATURE, top_p=1.0,
                       max_prompt_tokens=200)
    if lengths is not None:  # answers ending at these lengths, as if they had met EOS there
        rollout.response_mask = (torch.arange(rollout.response_mask.shape[1]) < lengths.unsqueeze(1)).float()
    score(bundle, rollout, TEMPERATURE, answers)
    experience, _ = make_experience(rollout, torch.linspace(-1, 1, answers), torch.zeros(answers), kl_coef=0.05,
                                    multiplier=None, ppo=cfg.training.ppo)
    return bundle, experience, cfg.training.ppo


def time_variant(bundle, experience, ppo, micro: int, on: set[str]) -> float:
    if "padding" in on:
        parts = RankMiniBatches(experience, Distributed.single()).micro_batches(torch.arange(len(experience)), micro)
    else:  # the previous cut: rows in order, the mini-batch's full width
        tokens = float(experience.rollout.response_mask.sum())
        parts = [(experience.select(torch.arange(start, min(start + micro, len(experience)))), 0.0)
                 for start in range(0, len(experience), micro)]
        parts = [(part, float(part.rollout.response_mask.sum()) / tokens) for part, _ in parts]
    started = time.perf_counter()
    for part, weight in parts:
        (variant_loss(bundle, part, ppo, on) * weight).backward()
    seconds = time.perf_counter() - started
    bundle.model.zero_grad(set_to_none=True)
    bundle.value_head.zero_grad(set_to_none=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed passes per variant (interleaved)")
    options = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    variants = {"previous": set(), **{f"+{change}": {change} for change in CHANGES}, "all (current)": set(CHANGES)}
    with tempfile.TemporaryDirectory() as directory:
        model_dir = build_model(Path(directory) / "model")
        settings = {"benchmark: 8 x 32 tokens, 1 micro-batch": (8, 32, None, 8),
                    "demo shape: 16 x 10-96 tokens, micro-batches of 4":
                        (16, 96, torch.randint(10, 97, (16,), generator=torch.Generator().manual_seed(0)), 4)}
        for title, (answers, max_tokens, lengths, micro) in settings.items():
            bundle, experience, ppo = setting(model_dir, answers, max_tokens, lengths, micro)
            times = {name: [] for name in variants}
            for _ in range(options.repeats + 1):  # the first round warms up
                for name, on in variants.items():
                    times[name].append(time_variant(bundle, experience, ppo, micro, on))
            base = statistics.median(times["previous"][1:])
            print(f"\n{title}: forward + backward of one mini-batch, median [min-max] of {options.repeats}")
            for name, values in times.items():
                values = values[1:]
                print(f"  {name:<15}{statistics.median(values):8.4f} s [{min(values):.4f}-{max(values):.4f}]"
                      f"  {statistics.median(values) / base:5.2f}x previous")


if __name__ == "__main__":
    main()
