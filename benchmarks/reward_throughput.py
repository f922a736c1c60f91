"""Throughput of the guard plus the multi-objective reward on unseen text, on one core.

    python benchmarks/reward_throughput.py [--rounds 7] [--answers 1024] [--batch 256] [--strict]

Rows (contenders), measured in the same run, interleaved: each of `--rounds` rounds runs every
contender once over its own freshly generated answers (`unseen_text.py`: sentences composed anew,
four answers per question as in training, so neither the guard's memos nor any other
per-sentence cache can help), in an order rotated from round to round. Per row: answers per
wall-clock second and per CPU second of this process (`time.process_time`, which leaves out the
time other processes held the core), median over the rounds with the range in brackets.

    guard alone                       `SafetyGuard.check_batch`, for reference.
    guard + reward                    As in training: the guard's verdicts go to
                                      `MultiObjectiveReward.score_batch`; a vetoed answer gets the
                                      fixed penalty and skips the objectives.
    guard + reward, all scored        TARGET ROW. The same, but every answer is scored by all four
                                      objectives and the hallucination checks: a vetoed verdict is
                                      handed over as `allow` (everything else it carries kept).
    all scored, labelled sets         For information: the project's labelled reward sets (ordering
                                      and hallucination sets), each answer made unique with a
                                      suffix; their sentences repeat from round to round.

Target (issue 14): guard + every reward objective >= 5,000 answers per CPU second on the unseen
text (median over the rounds). Single process, single thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable

from unseen_text import UnseenText

from clinical_rlhf.config import RewardConfig
from clinical_rlhf.reward import MultiObjectiveReward
from clinical_rlhf.reward.evaluation import load_hallucination_set, load_ordering_set
from clinical_rlhf.safety import SafetyGuard, SafetyVerdict

TARGET_ANSWERS_PER_CPU_SECOND = 5000.0
TARGET_ROW = "guard + reward, all scored"

Pairs = list[tuple[str, str]]


def labelled_pairs(size: int) -> Pairs:
    """`size` pairs from the labelled reward sets, each answer made unique with a suffix."""
    pairs = [(s.prompt, a.text) for s in load_ordering_set() for a in s.answers]
    pairs += [(item.prompt, item.text) for item in load_hallucination_set()]
    return [(pairs[i % len(pairs)][0], f"{pairs[i % len(pairs)][1]} ({i})") for i in range(size)]


def unvetoed(verdict: SafetyVerdict) -> SafetyVerdict:
    return verdict if verdict.is_safe else dataclasses.replace(verdict, action="allow")


def timed(score: Callable[[list[str], list[str]], object], pairs: Pairs, batch: int) -> tuple[float, float]:
    """(answers per wall second, answers per CPU second) of one pass in batches of `batch`."""
    chunks = [pairs[i:i + batch] for i in range(0, len(pairs), batch)]
    columns = [([p for p, _ in chunk], [r for _, r in chunk]) for chunk in chunks]
    cpu_started, started = time.process_time(), time.perf_counter()
    for prompts, responses in columns:
        score(prompts, responses)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return len(pairs) / wall, len(pairs) / max(cpu, 1e-9)


def spread(values: list[float]) -> str:
    """`median [lowest-highest]`."""
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="Interleaved rounds (at least 5 for the report).")
    parser.add_argument("--answers", type=int, default=1024, help="Answers per contender per round.")
    parser.add_argument("--batch", type=int, default=256, help="Answers per check_batch/score_batch call.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="Exit 1 when the target row is below the target.")
    args = parser.parse_args()
    if min(args.rounds, args.answers, args.batch) < 1:
        parser.error("--rounds, --answers and --batch must be at least 1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says

    guard = SafetyGuard()
    reward = MultiObjectiveReward(RewardConfig(), knowledge=guard.knowledge)

    def guard_and_reward(prompts: list[str], responses: list[str]) -> object:
        return reward.score_batch(prompts, responses, guard.check_batch(prompts, responses))

    def all_scored(prompts: list[str], responses: list[str]) -> object:
        verdicts = [unvetoed(verdict) for verdict in guard.check_batch(prompts, responses)]
        return reward.score_batch(prompts, responses, verdicts)

    contenders: dict[str, tuple[Callable, bool]] = {  # name -> (scorer, on unseen text)
        "guard alone": (guard.check_batch, True),
        "guard + reward": (guard_and_reward, True),
        TARGET_ROW: (all_scored, True),
        "all scored, labelled sets": (all_scored, False),
    }
    names = list(contenders)
    texts = {(name, round_): (UnseenText(seed=args.seed + 1 + round_ * len(names) + index,
                                         knowledge=guard.knowledge).pairs(args.answers)
                              if contenders[name][1] else labelled_pairs(args.answers))
             for round_ in range(args.rounds) for index, name in enumerate(names)}
    warm_up = UnseenText(seed=args.seed, knowledge=guard.knowledge).pairs(args.batch)
    for name in names:
        timed(contenders[name][0], warm_up, args.batch)
    vetoed = sum(not v.is_safe for v in guard.check_batch(*map(list, zip(*texts[(TARGET_ROW, 0)])))) / args.answers
    load = os.getloadavg()[0]

    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            rates[name].append(timed(contenders[name][0], texts[(name, round_)], args.batch))

    print(f"{args.answers:,} answers per contender per round, batches of {args.batch}, {args.rounds} interleaved "
          f"rounds on one core; load average before the run {load:.2f} on {os.cpu_count()} CPUs; the guard vetoes "
          f"{vetoed:.0%} of the unseen answers")
    print("median [lowest-highest] over the rounds")
    print(f"{'contender':<28}{'answers/s wall':>24}{'answers per CPU s':>24}{'us per answer (CPU)':>22}")
    for name, pairs in rates.items():
        walls, cpus = [w for w, _ in pairs], [c for _, c in pairs]
        print(f"{name:<28}{spread(walls):>24}{spread(cpus):>24}{1e6 / statistics.median(cpus):>22.0f}")
    target = statistics.median(cpu for _, cpu in rates[TARGET_ROW])
    met = target >= TARGET_ANSWERS_PER_CPU_SECOND
    print(f"target ({TARGET_ROW} >= {TARGET_ANSWERS_PER_CPU_SECOND:,.0f} answers per CPU second on unseen text): "
          f"{'met' if met else 'MISSED'} ({target:,.0f})")
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
