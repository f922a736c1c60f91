"""Throughput of the rule-based reward on realistic answers, against the safety guard alone.

    python benchmarks/reward_throughput.py [--batch 256] [--repeats 7] [--strict]

The answers are the project's labelled reward sets (emergency, chronic, everyday, fact and
diagnostic questions; correct answers and answers with planted errors), each made unique with
a short suffix so no cache sees a repeated answer; the prompt cache is left on, as in training,
where several answers share a prompt. Single process, single thread (the reward is pure Python).
Reported: answers/s for the guard alone, the reward alone (on the guard's verdicts, and with
every answer allowed so that all four objectives and the hallucination checks run), and both;
the best of `--repeats` timed passes (the least disturbed by other processes) and the median.
Target: reward >= 5,000 answers/s with every answer scored. One more row, for information:
every answer scored with the prompt cache emptied before each batch, so each prompt is read
(guidelines and red flags recognised) once per batch, the cost of a batch of all-new prompts
with the corpus's mix of repeats (the evaluation sets hold about five answers per prompt).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

TARGET = 5000.0


def corpus(size: int) -> tuple[list[str], list[str]]:
    from clinical_rlhf.reward.evaluation import load_hallucination_set, load_ordering_set

    pairs = [(s.prompt, a.text) for s in load_ordering_set() for a in s.answers]
    pairs += [(item.prompt, item.text) for item in load_hallucination_set()]
    prompts, responses = [], []
    for i in range(size):
        prompt, response = pairs[i % len(pairs)]
        prompts.append(prompt)
        responses.append(f"{response} ({i})" if response else response)
    return prompts, responses


def timed(fn, batches, repeats: int) -> list[float]:
    """Seconds per full pass over `batches`, `repeats` times (after one warm-up pass)."""
    for batch in batches:
        fn(*batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            fn(*batch)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=4096, help="answers per timed pass")
    parser.add_argument("--batch", type=int, default=256, help="answers per score_batch call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 when below the target")
    args = parser.parse_args()

    from clinical_rlhf.config import RewardConfig
    from clinical_rlhf.reward import MultiObjectiveReward
    from clinical_rlhf.safety import SafetyGuard
    from clinical_rlhf.safety.verdict import SafetyVerdict

    allow = SafetyVerdict(action="allow")
    prompts, responses = corpus(args.answers)
    reward, guard = MultiObjectiveReward(RewardConfig()), SafetyGuard()
    chunks = [(prompts[i:i + args.batch], responses[i:i + args.batch]) for i in range(0, len(prompts), args.batch)]
    verdicts = [guard.check_batch(p, r) for p, r in chunks]
    vetoed = sum(not v.is_safe for batch in verdicts for v in batch) / len(prompts)

    results = {
        "guard alone": timed(guard.check_batch, chunks, args.repeats),
        "reward alone": timed(reward.score_batch, [(p, r, v) for (p, r), v in zip(chunks, verdicts)], args.repeats),
        "reward, no veto": timed(reward.score_batch, [(p, r, [allow] * len(p)) for p, r in chunks], args.repeats),
        "guard + reward": timed(lambda p, r: reward.score_batch(p, r, guard.check_batch(p, r)), chunks, args.repeats),
        "no veto, cold": timed(lambda p, r: (reward.clear_prompt_cache(), reward.score_batch(p, r, [allow] * len(p))),
                               chunks, args.repeats),
    }
    print(f"{len(prompts)} answers per pass, batches of {args.batch}, {args.repeats} passes; "
          f"guard vetoes {vetoed:.0%} (vetoed answers skip the objectives)")
    print(f"{'':16s} {'best answers/s':>15s} {'median answers/s':>17s} {'us/answer (best)':>17s}")
    for name, times in results.items():
        best, median = len(prompts) / min(times), len(prompts) / statistics.median(times)
        print(f"{name:16s} {best:15,.0f} {median:17,.0f} {1e6 / best:17.1f}")
    reward_best = len(prompts) / min(results["reward, no veto"])
    verdict = "meets" if reward_best >= TARGET else "BELOW"
    print(f"reward (every answer scored) {verdict} the {TARGET:,.0f} answers/s target")
    return 1 if args.strict and reward_best < TARGET else 0


if __name__ == "__main__":
    raise SystemExit(main())
