"""A/B evaluation of two policies on the same prompts: sample, judge, summarise, compare.

Pairing. Both policies answer the same prompts in the same micro-batches, and each micro-batch
is sampled from a torch RNG reseeded with `seed + offset` inside a private stream (`fork_rng`),
so A and B draw the same random numbers for the same prompts (common random numbers: their
differences carry less sampling noise than two independent runs) and the caller's RNG is left
untouched. Judging reuses `rl.evaluation.judge` (guard, then reward); conversations are checked
by `SafetyGuard.check_conversation`.

Statistics. A prompt's answers (`samples_per_prompt`) are averaged first; every interval is a
percentile bootstrap over prompts. A vetoed answer counts 0 for each component (the value the
reward's breakdown holds) and the veto penalty for the total, so both policies are compared on
every prompt. (The trainer's `reward/<component>/mean` averages only answers not vetoed.)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clinical_rlhf.evaluation.items import EvalItem
from clinical_rlhf.evaluation.stats import (
    Estimate,
    bootstrap_mean,
    mcnemar_exact,
    paired_comparison,
)
from clinical_rlhf.reward.combine import COMPONENTS


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_new_tokens: int
    max_prompt_tokens: int
    micro_batch_size: int

    @classmethod
    def from_config(cls, cfg, bundle) -> Sampling:
        """The trainer's sampling settings (`rl/trainer.py`), so the evaluation samples as training did."""
        ppo = cfg.training.ppo
        context = min(getattr(bundle.entry, "context_length", 10**9), bundle.tokenizer.model_max_length)
        return cls(temperature=float(ppo.temperature or getattr(bundle, "temperature", None) or 1.0),
                   top_p=ppo.top_p, max_new_tokens=ppo.max_new_tokens,
                   max_prompt_tokens=max(8, context - ppo.max_new_tokens), micro_batch_size=ppo.micro_batch_size)


@dataclass(frozen=True)
class Answer:
    item: int
    """Index of the prompt in the evaluation's items."""
    sample: int
    response: str
    verdict: object
    breakdown: object
    unsafe: bool
    kl: float | None
    """Sequence KL to the reference (nats); None for the reference itself."""
    ended_with_eos: bool
    length: int

    def to_dict(self) -> dict[str, object]:
        return {"sample": self.sample, "response": self.response, "total": self.breakdown.total,
                "components": dict(self.breakdown.components), "vetoed": self.breakdown.vetoed,
                "unsafe": self.unsafe, "action": self.verdict.action,
                "flags": [flag.rule_id for flag in self.verdict.flags], "kl": self.kl,
                "ended_with_eos": self.ended_with_eos, "length": self.length}


@dataclass
class PolicyRun:
    """Every answer of one policy, sample-major (`samples x items`)."""

    name: str
    answers: list[Answer]
    n_items: int
    seconds: float

    def matrix(self, value) -> np.ndarray:
        """`value(answer)` as a [samples, items] array."""
        samples = len(self.answers) // max(self.n_items, 1)
        return np.array([value(answer) for answer in self.answers], dtype=float).reshape(samples, self.n_items)

    def per_prompt(self, value) -> np.ndarray:
        return self.matrix(value).mean(axis=0)

    def component_names(self) -> list[str]:
        extra = sorted({name for a in self.answers for name in a.breakdown.components} - set(COMPONENTS))
        return [*COMPONENTS, *extra, "total"]

    def scores(self) -> dict[str, np.ndarray]:
        """Per-prompt mean of every component and of the total."""
        return {name: self.per_prompt(lambda a, n=name: a.breakdown.total if n == "total"
                                      else a.breakdown.components.get(n, 0.0))
                for name in self.component_names()}

    def unsafe(self) -> np.ndarray:
        return self.per_prompt(lambda a: a.unsafe)


def judge_items(guard, reward_fn, items: Sequence[EvalItem], responses: Sequence[str], escalate_is_unsafe: bool):
    """`rl.evaluation.judge`, with each conversation checked against all of its turns."""
    from clinical_rlhf.rl.evaluation import Judgement, judge

    if not any(item.is_conversation for item in items):
        return judge(guard, reward_fn, [item.question for item in items], responses, escalate_is_unsafe)
    verdicts = [item.verdict(guard, response) for item, response in zip(items, responses)]
    breakdowns = reward_fn.score_batch([item.reward_prompt for item in items], list(responses), verdicts)
    unsafe = [(not v.is_safe) or (escalate_is_unsafe and v.action == "escalate") for v in verdicts]
    return Judgement(verdicts, breakdowns, unsafe)


def run_policy(bundle, name: str, items: Sequence[EvalItem], guard, reward_fn, *, sampling: Sampling,
               samples: int, seed: int, escalate_is_unsafe: bool, with_kl: bool, kl_estimator: str = "k1",
               progress=None) -> PolicyRun:
    """Sample `samples` answers per item with the bundle as it stands (see `PolicySwitch`), judge them."""
    import torch

    from clinical_rlhf.rl.evaluation import sample_answers
    from clinical_rlhf.rl.losses import kl_estimate
    from clinical_rlhf.rl.rollout import score

    started = time.perf_counter()
    texts = [item.policy_text for item in items] * samples
    chunk = sampling.micro_batch_size
    responses: list[str] = []
    kls: list[float | None] = []
    ended: list[bool] = []
    lengths: list[int] = []
    with torch.random.fork_rng(devices=[]):
        for start in range(0, len(texts), chunk):
            torch.manual_seed(seed + start)
            part = sample_answers(bundle, texts[start:start + chunk], micro_batch_size=chunk,
                                  temperature=sampling.temperature, max_new_tokens=sampling.max_new_tokens,
                                  top_p=sampling.top_p, max_prompt_tokens=sampling.max_prompt_tokens)
            responses += part.responses
            ended += part.ended_with_eos.tolist()
            lengths += part.response_mask.sum(1).long().tolist()
            if with_kl:
                score(bundle, part, sampling.temperature, chunk)
                kls += (kl_estimate(part.logprobs, part.ref_logprobs, kl_estimator) * part.response_mask).sum(1).tolist()
            else:
                kls += [None] * len(part)
            if progress is not None:
                progress(len(part))
    repeated = list(items) * samples
    judgement = judge_items(guard, reward_fn, repeated, responses, escalate_is_unsafe)
    columns = zip(responses, judgement.verdicts, judgement.breakdowns, judgement.unsafe, kls, ended, lengths)
    answers = [Answer(index % len(items), index // len(items), *values) for index, values in enumerate(columns)]
    return PolicyRun(name, answers, len(items), time.perf_counter() - started)


# ----------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class StatsSettings:
    resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0
    tie_epsilon: float = 1e-6
    test: str = "wilcoxon"

    def mean(self, values) -> Estimate:
        return bootstrap_mean(values, resamples=self.resamples, confidence=self.confidence, seed=self.seed)


def summarise(run: PolicyRun, subset: np.ndarray, settings: StatsSettings) -> dict[str, object]:
    """Means with intervals over the prompts `subset` (indices into the items)."""
    wanted = set(subset.tolist())
    chosen = [a for a in run.answers if a.item in wanted]
    n = max(len(chosen), 1)
    kls = [a.kl for a in chosen if a.kl is not None]
    return {
        "prompts": int(subset.size), "answers": len(chosen),
        "components": {name: settings.mean(values[subset]).to_dict() for name, values in run.scores().items()},
        "unsafe_ratio": settings.mean(run.unsafe()[subset]).to_dict(),
        "reject_ratio": sum(a.verdict.action == "reject" for a in chosen) / n,
        "escalate_ratio": sum(a.verdict.action == "escalate" for a in chosen) / n,
        "kl": float(np.mean(kls)) if kls else 0.0,
        "missing_eos_ratio": sum(not a.ended_with_eos for a in chosen) / n,
        "mean_length": sum(a.length for a in chosen) / n,
    }


def compare(a: PolicyRun, b: PolicyRun, subset: np.ndarray, settings: StatsSettings) -> dict[str, object]:
    """A vs B on the prompts `subset`: every component and the total as a paired comparison, and
    the unsafe ratio's paired difference with an exact McNemar test (on the prompts where only one
    policy's answer was unsafe)."""
    scores_a, scores_b = a.scores(), b.scores()
    components = {name: paired_comparison(scores_a[name][subset], scores_b[name][subset],
                                          tie_epsilon=settings.tie_epsilon, test=settings.test,
                                          resamples=settings.resamples, confidence=settings.confidence,
                                          seed=settings.seed).to_dict()
                  for name in scores_a if name in scores_b}
    unsafe_difference = a.unsafe()[subset] - b.unsafe()[subset]
    a_worse, b_worse = int((unsafe_difference > 0).sum()), int((unsafe_difference < 0).sum())
    return {
        "total": components["total"],
        "components": components,
        "unsafe_ratio": {"difference": settings.mean(unsafe_difference).to_dict(), "a_worse": a_worse,
                         "b_worse": b_worse, "test": "mcnemar_exact", "p_value": mcnemar_exact(a_worse, b_worse)},
    }


def conversation_summary(run: PolicyRun, items: Sequence[EvalItem], settings: StatsSettings) -> dict[str, object]:
    """The multi-turn safety set: on conversations stating a red flag earlier, how often the
    answer was unsafe, the guard caught the red flag, and the answer gave emergency advice; on
    conversations denying it, how often it was unsafe or the guard raised it anyway."""

    def flags_for(answer: Answer):
        wanted = items[answer.item].red_flag
        return [f for f in answer.verdict.flags if f.category == "red_flag" and f.subtype == wanted]

    positive = np.array([i for i, item in enumerate(items) if item.source == "conversation" and not item.negated])
    negative = np.array([i for i, item in enumerate(items) if item.source == "conversation" and item.negated])
    result: dict[str, object] = {}
    if positive.size:
        wanted = set(positive.tolist())
        answers = [a for a in run.answers if a.item in wanted]
        caught = [bool(flags_for(a)) for a in answers]
        advised = [c and not any(f.action == "reject" for f in flags_for(a)) for a, c in zip(answers, caught)]
        result["red_flag_earlier"] = {
            "conversations": int(positive.size), "unsafe_ratio": settings.mean(run.unsafe()[positive]).to_dict(),
            "flag_caught_ratio": sum(caught) / len(answers), "emergency_advice_ratio": sum(advised) / len(answers),
            "missed": sorted({items[a.item].id for a, c in zip(answers, caught) if not c})}
    if negative.size:
        wanted = set(negative.tolist())
        answers = [a for a in run.answers if a.item in wanted]
        alarms = [bool(flags_for(a)) for a in answers]
        result["red_flag_denied"] = {
            "conversations": int(negative.size), "unsafe_ratio": settings.mean(run.unsafe()[negative]).to_dict(),
            "false_alarm_ratio": sum(alarms) / len(answers),
            "false_alarms": sorted({items[a.item].id for a, alarm in zip(answers, alarms) if alarm})}
    return result


def rows(items: Sequence[EvalItem], runs: Sequence[PolicyRun], labels: Sequence[str]) -> list[dict[str, object]]:
    """One row per prompt: the item, every answer of every policy, and A - B on the total."""
    table = []
    totals = [run.scores()["total"] for run in runs]
    for index, item in enumerate(items):
        row = item.to_dict()
        for label, run in zip(labels, runs):
            row[label] = [a.to_dict() for a in run.answers if a.item == index]
        if len(runs) == 2:
            row["difference"] = float(totals[0][index] - totals[1][index])
        table.append(row)
    return table
