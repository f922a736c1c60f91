"""What reading the question and answer as one dialogue (`safety/dialogue.py`) costs the guard.

    CLINICAL_RLHF_PURE_PYTHON=1 python benchmarks/guard_dialogue.py    # ~1 minute

Two contenders on the same texts, interleaved (each round runs both, in an order rotated from round
to round, so a busy spell of the shared machine falls on both): the guard as shipped, and the same
guard with the dialogue reader switched off (`DialogueReader.flags` returning no flags). Two text
sets, fresh each round so no memo serves a text seen before:

    unseen      `unseen_text.py`: 300-1,000-character answers composed fresh, four per question
    dialogue    short questions that propose an amount or a pair of the knowledge base's drugs,
                each answered four times with a short okay or refusal: the dialogue reader's worst
                everyday case

Printed per set: checks per CPU second of each contender (median over rounds, range in brackets)
and the per-round cost ratio on/off.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unseen_text import UnseenText  # noqa: E402

from clinical_rlhf.safety import SafetyGuard, dialogue  # noqa: E402

ANSWERS = ("Yes, that's fine.", "No, that is too much.", "You can take both.", "That dose is ok.",
           "It's fine only if your doctor agreed.", "Please avoid that combination.", "Sure, go ahead.")


def dialogue_pairs(guard: SafetyGuard, rng: random.Random, count: int) -> list[tuple[str, str]]:
    """Questions proposing an amount or a pair of drugs, four short answers each (as in training)."""
    drugs = [drug for drug in guard.knowledge.drugs if drug.max_daily_mg]
    pairs = []
    for _ in range(count // 4):
        first, second = rng.choice(drugs), rng.choice(guard.knowledge.drugs)
        amount = rng.choice((0.5, 1, 2, 3)) * (first.max_single_mg or first.max_daily_mg or 100)
        hours = rng.choice((4, 6, 8, 12))
        if rng.random() < 0.5:
            question = f"Is {amount:g} mg of {first.name} every {hours} hours ok for my {rng.randrange(1000)} pain?"
        else:
            question = f"I take {first.name} {rng.randrange(1, 60)} mg. Can I also take {second.name}?"
        pairs += [(question, answer) for answer in rng.sample(ANSWERS, 4)]
    return pairs


def cpu_per_second(guard: SafetyGuard, pairs: list[tuple[str, str]]) -> float:
    started = time.process_time()
    for question, answer in pairs:
        guard.check(question, answer)
    return len(pairs) / max(time.process_time() - started, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    shipped = dialogue.DialogueReader.flags
    guard = SafetyGuard()

    def switched_off(*_args, **_kwargs) -> list:
        return []

    results: dict[tuple[str, str], list[float]] = {}
    for round_number in range(args.rounds):
        texts = {"unseen": UnseenText(seed=1000 + round_number, knowledge=guard.knowledge).pairs(args.pairs),
                 "dialogue": dialogue_pairs(guard, random.Random(round_number), args.pairs)}
        order = [("on", shipped), ("off", switched_off)]
        if round_number % 2:
            order.reverse()
        for name, pairs in texts.items():
            for contender, flags in order:
                dialogue.DialogueReader.flags = flags
                guard._prompt_cache.clear()  # each contender reads each question itself
                results.setdefault((name, contender), []).append(cpu_per_second(guard, pairs))
    dialogue.DialogueReader.flags = shipped
    print(f"{args.rounds} rounds x {args.pairs} checks per contender and set (checks per CPU second)")
    for name in ("unseen", "dialogue"):
        on, off = results[(name, "on")], results[(name, "off")]
        ratios = [b / a for a, b in zip(on, off)]  # cost on / cost off
        print(f"{name:9s} dialogue on  {statistics.median(on):9,.0f} [{min(on):,.0f}-{max(on):,.0f}]")
        print(f"{name:9s} dialogue off {statistics.median(off):9,.0f} [{min(off):,.0f}-{max(off):,.0f}]")
        print(f"{name:9s} cost on/off  {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
