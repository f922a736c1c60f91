"""Judging answers (guard, then reward) and the before/after evaluation on held-out prompts."""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clinical_rlhf.reward.breakdown import aggregate_breakdowns
from clinical_rlhf.rl.losses import kl_estimate
from clinical_rlhf.rl.rollout import Rollout, concat_rollouts, generate, score
from clinical_rlhf.safety.verdict import Category

log = logging.getLogger(__name__)


@dataclass
class Judgement:
    """The guard's verdicts and the reward's breakdowns of a batch of answers."""

    verdicts: list
    breakdowns: list
    unsafe: list[bool]
    """Vetoed (`reject`), or `escalate` when `safety.escalate_is_unsafe`."""

    @property
    def costs(self) -> list[float]:
        """Safety cost per answer: 1.0 when unsafe, else the reward's own cost."""
        return [1.0 if bad else float(b.cost) for bad, b in zip(self.unsafe, self.breakdowns)]

    @property
    def unsafe_ratio(self) -> float:
        return sum(self.unsafe) / max(len(self.unsafe), 1)

    def metrics(self) -> dict[str, float]:
        n = max(len(self.verdicts), 1)
        return aggregate_breakdowns(self.breakdowns) | veto_category_ratios(self.verdicts) | {
            "safety/unsafe_ratio": self.unsafe_ratio,
            "safety/reject_ratio": sum(v.action == "reject" for v in self.verdicts) / n,
            "safety/escalate_ratio": sum(v.action == "escalate" for v in self.verdicts) / n,
        }


def judge(guard, reward_fn, prompts: Sequence[str], responses: Sequence[str], escalate_is_unsafe: bool) -> Judgement:
    """The guard checks every answer first; the reward then scores them (a vetoed answer gets
    the veto penalty and cost 1 from the reward, never a learned score)."""
    verdicts = guard.check_batch(list(prompts), list(responses))
    breakdowns = reward_fn.score_batch(list(prompts), list(responses), verdicts)
    unsafe = [(not v.is_safe) or (escalate_is_unsafe and v.action == "escalate") for v in verdicts]
    return Judgement(verdicts, breakdowns, unsafe)


def sample_answers(bundle, prompts: Sequence[str], *, micro_batch_size: int, should_stop=None,
                   on_progress: Callable[[int, int], None] | None = None, **sampling: float) -> Rollout | None:
    """Generate in chunks of `micro_batch_size`; None when `should_stop()` turned true meanwhile.
    `on_progress(done, total)` is called after each chunk (the progress bar's held-out count)."""
    parts = []
    for start in range(0, len(prompts), micro_batch_size):
        parts.append(generate(bundle, prompts[start:start + micro_batch_size], should_stop=should_stop, **sampling))
        if on_progress is not None:
            on_progress(min(start + micro_batch_size, len(prompts)), len(prompts))
        if should_stop is not None and should_stop():
            return None
    return concat_rollouts(parts, bundle.tokenizer.pad_token_id)


def evaluate_policy(bundle, guard, reward_fn, prompts: Sequence[str], *, seed: int, temperature: float,
                    max_new_tokens: int, top_p: float, max_prompt_tokens: int, micro_batch_size: int,
                    escalate_is_unsafe: bool, kl_estimator: str = "k1",
                    on_progress: Callable[[int, int], None] | None = None) -> dict[str, object]:
    """Sample one answer per held-out prompt and summarise: mean reward, each component, unsafe
    ratio, KL to the reference (nats per answer), missing-EOS ratio and mean answer length.

    Sampling uses a private RNG stream seeded with `seed` (`fork_rng`), so the before and after
    evaluations see the same random numbers and the training RNG is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        rollout = sample_answers(bundle, list(prompts), micro_batch_size=micro_batch_size, temperature=temperature,
                                 max_new_tokens=max_new_tokens, top_p=top_p, max_prompt_tokens=max_prompt_tokens,
                                 on_progress=on_progress)
        score(bundle, rollout, temperature, micro_batch_size)
    judgement = judge(guard, reward_fn, rollout.prompts, rollout.responses, escalate_is_unsafe)
    metrics = judgement.metrics()
    kl = (kl_estimate(rollout.logprobs, rollout.ref_logprobs, kl_estimator) * rollout.response_mask).sum(1)
    components = {key.split("/")[1]: value for key, value in metrics.items()
                  if key.startswith("reward/") and key.endswith("/mean") and key.count("/") == 2
                  and key != "reward/total/mean"}
    return {
        "prompts": len(rollout),
        "reward": metrics["reward/total/mean"],
        "components": components,
        "unsafe_ratio": judgement.unsafe_ratio,
        "kl": kl.mean().item(),
        "missing_eos_ratio": 1.0 - rollout.ended_with_eos.float().mean().item(),
        "mean_length": rollout.response_mask.sum(1).mean().item(),
        "samples": answer_samples(rollout.prompts, rollout.responses, judgement),
    }


def stored_evaluation(path: Path, which: str, reuse: bool, evaluate: Callable[[], dict]) -> dict:
    """`evaluation.json` = {"before": ..., "after": ...}: return the stored `which` when `reuse`,
    else run `evaluate()` and store it (a new `before` drops an old `after`)."""
    stored = json.loads(path.read_text()) if path.is_file() else {}
    if reuse and which in stored:
        return stored[which]
    log.info("evaluating %s training on held-out prompts", which)
    result = evaluate()
    kept = {"before": stored["before"]} if which == "after" and "before" in stored else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(kept | {which: result}, indent=2))
    return result


VETO_CATEGORIES = typing.get_args(Category)
SAMPLES_KEPT = 8


def veto_category_ratios(verdicts: Sequence) -> dict[str, float]:
    """`safety/vetoes/<category>`: share of answers vetoed (rejected) with a flag of that category
    (an answer with two categories counts in both), so the report can chart which kind of unsafe
    advice training removes."""
    n = max(len(verdicts), 1)
    counts = dict.fromkeys(VETO_CATEGORIES, 0)
    for verdict in verdicts:
        if verdict.action == "reject":
            for category in {flag.category for flag in verdict.flags if flag.action == "reject"}:
                counts[category] += 1
    return {f"safety/vetoes/{category}": count / n for category, count in counts.items()}


def answer_samples(prompts: Sequence[str], responses: Sequence[str], judgement: Judgement) -> list[dict]:
    """The first `SAMPLES_KEPT` held-out answers with their verdict and total reward, kept in
    evaluation.json so the report shows answers before and after training side by side."""
    return [{"prompt": prompt, "response": response, "action": verdict.action, "reward": float(breakdown.total)}
            for prompt, response, verdict, breakdown
            in list(zip(prompts, responses, judgement.verdicts, judgement.breakdowns))[:SAMPLES_KEPT]]
