"""What the question's triage costs the guard: checks per CPU second on unseen text, four answers per
question as in training, the guard with its triage reader against the same guard with a constant
stub reader (everything else equal).

    python benchmarks/guard_triage_cost.py            # ~1-2 minutes
    python benchmarks/guard_triage_cost.py --rounds 21

Rounds are interleaved, the order of the two rotated from round to round, and each guard checks
text composed fresh for it (`unseen_text.py`), so no memo serves either; printed: the median and
range of checks per CPU second of each, and of their ratio per round.
"""

from __future__ import annotations

import argparse
import statistics
import time

from unseen_text import UnseenText

from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.triage import Triage


class ConstantReader:
    """Stands in for the triage reader: no reading at all."""

    def read(self, *_) -> Triage:
        return Triage("routine")


def checks_per_cpu_second(guard: SafetyGuard, text: UnseenText, questions: int) -> float:
    pairs = [(text.question(), [text.answer() for _ in range(4)]) for _ in range(questions)]
    started, checks = time.process_time(), 0
    for question, answers in pairs:
        for answer in answers:
            guard.check(question, answer)
            checks += 1
    return checks / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--questions", type=int, default=150, help="questions per guard per round")
    args = parser.parse_args()
    guards = {"with triage": SafetyGuard(), "stub reader": SafetyGuard()}
    guards["stub reader"].__dict__["_triage_reader"] = ConstantReader()
    text = UnseenText(seed=11)
    rates: dict[str, list[float]] = {name: [] for name in guards}
    ratios = []
    for number in range(args.rounds):
        for name in list(guards)[::1 if number % 2 == 0 else -1]:
            rates[name].append(checks_per_cpu_second(guards[name], text, args.questions))
        ratios.append(rates["with triage"][-1] / rates["stub reader"][-1])
    for name, values in rates.items():
        print(f"{name:12} {statistics.median(values):8,.0f} checks/CPU s  (range {min(values):,.0f}-{max(values):,.0f})")
    print(f"{'ratio':12} {statistics.median(ratios):8.2f}  (range {min(ratios):.2f}-{max(ratios):.2f}), "
          f"{args.rounds} rounds")


if __name__ == "__main__":
    main()
