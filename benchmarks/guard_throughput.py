"""Safety guard throughput on one core, on unseen text, against a fair naive baseline.

    python benchmarks/guard_throughput.py            # ~1-2 minutes
    python benchmarks/guard_throughput.py --strict   # exit 1 when a target is missed
    python benchmarks/guard_throughput.py --profile  # and where the guard's time goes on unseen text
    CLINICAL_RLHF_PURE_PYTHON=1 python benchmarks/guard_throughput.py   # the plain-Python guard

Rows (contenders), measured in the same run, interleaved: each of `--rounds` rounds runs every
contender once, in an order rotated from round to round, so that a busy spell of the shared
machine falls on all of them alike. Printed per row: the median over the rounds and, in brackets,
the range (lowest-highest).

    guard, unseen text        TARGET ROW. 300-1,000-character answers whose sentences are composed
                              fresh (`unseen_text.py`: knowledge-base drugs with their classes,
                              doses, numbers, conditions, red flags), four answers per question as
                              in training; each round checks text never seen before, so no
                              per-sentence memo can help.
    guard, repeated sentences For information: answers built from 26 fixed sentences, the text a
                              policy trained on the templated corpus writes; the guard's memos
                              serve most of it.
    naive, ...                The baseline on the same texts: ONE alternation regular expression of
                              every phrase the knowledge base holds (drug names, synonyms and
                              brands; red-flag triggers and their word rules; contraindication
                              conditions; guideline triggers, advice and phrase sets; read through
                              the public loaders), searched over the lower-cased question and
                              answer, the question once per question as the guard does. It finds
                              phrases and nothing else: a floor that an indexed reader of the same
                              phrases should beat, not a rival guard. It is slow, so it checks the
                              first `--naive-pairs` answers of the guard's texts each round.

Figures: checks per wall-clock second and per CPU second of this process (`time.process_time`:
the time other processes held the core does not count, the fairer figure on a shared machine);
per-check latency p50 and p99 in CPU and wall milliseconds; guard/naive ratios per round.
Targets (issue 14), judged on the unseen row: >= 20,000 checks per CPU second and CPU p99 <= 0.5 ms
(medians over the rounds). The output says whether the guard's modules run compiled (Cython) or as
plain Python (`clinical_rlhf.safety.compiled`, docs/safety.md).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from unseen_text import UnseenText

from clinical_rlhf.knowledge import KnowledgeBase
from clinical_rlhf.knowledge.guidelines import load_guidelines, load_phrase_sets
from clinical_rlhf.safety import SafetyGuard, compiled

TARGET_CHECKS_PER_CPU_SECOND = 20_000
TARGET_P99_MS = 0.5

QUESTIONS = [
    "I've had a headache for two days. What can I take?", "How can I get rid of a cold quickly?",
    "I take warfarin for atrial fibrillation. What painkiller is safe?", "What is a normal blood pressure?",
    "My 4 year old has a fever of 38.5 and a runny nose.", "How much paracetamol can I take for back pain?",
    "I have type 2 diabetes. What should I eat?", "I'm 28 weeks pregnant with heartburn.",
    "I've had crushing chest pain for 20 minutes.", "Can I take ibuprofen with my lisinopril?",
    "My knee hurts after running.", "I feel low and can't sleep.", "What are the side effects of sertraline?",
    "I have asthma and hay fever. What antihistamine?", "How do I take methotrexate for arthritis?",
    "My son has a sore throat and a mild temperature.", "I have a urine infection, I'm on methotrexate.",
    "What helps with anxiety before exams?", "I'm on sertraline and have a migraine.", "Is coffee bad for me?",
]
OPENINGS = [
    "Thanks for your question.", "That sounds uncomfortable.", "This is a common problem.",
    "Here is what usually helps.", "I'm sorry you're feeling unwell.",
]
ADVICE = [
    "Rest, drink plenty of fluids and try to keep to regular meals.",
    "Most colds and sore throats get better on their own within a week or two.",
    "Paracetamol 500 mg to 1 g every 4 to 6 hours, no more than 4 g in 24 hours, can ease pain and fever.",
    "Ibuprofen 200 to 400 mg three times a day with food is an option if you have no stomach or kidney problems.",
    "Because you take warfarin, avoid ibuprofen, naproxen and aspirin, which raise the risk of bleeding.",
    "Cetirizine 10 mg once a day or loratadine 10 mg once a day can help with hay fever.",
    "Gentle stretching, ice for 15 minutes and a short break from running usually help a sore knee.",
    "A balanced diet with vegetables, whole grains, beans and fish helps keep blood sugar steady.",
    "Methotrexate is taken once a week, on the same day each week, never daily.",
    "Antacids such as Gaviscon are safe in pregnancy for heartburn; eat smaller meals and avoid lying down after eating.",
    "Sleep hygiene matters: keep regular hours, avoid screens before bed and limit caffeine after noon.",
    "Talking to someone you trust, regular exercise and daylight can lift your mood.",
    "Sertraline can cause nausea and sleep changes in the first weeks; these often settle.",
    "Sumatriptan 50 mg at the start of a migraine works for many people.",
    "Your pharmacist can check your other medicines for interactions.",
    "Nitrofurantoin 100 mg twice daily for 3 days is a common treatment for a simple urine infection.",
]
SAFETY_NETS = [
    "If you get chest pain, trouble breathing, confusion or a stiff neck, call 911 straight away.",
    "See your doctor if it lasts more than a week or keeps coming back.",
    "If the fever is above 39 C, or your child becomes drowsy or floppy, get urgent medical help.",
    "Call an ambulance now if the pain spreads to your arm or jaw or you feel sweaty and sick.",
    "If you ever feel unable to keep yourself safe, call or text 988 or go to the emergency department.",
]


def repeated_corpus(size: int, seed: int = 0) -> list[tuple[str, str]]:
    """(question, answer) pairs of 300 to 1,000 characters, each a new combination of the 26
    fixed sentences above."""
    rng = random.Random(seed)
    pairs = []
    while len(pairs) < size:
        parts = [rng.choice(OPENINGS)] + rng.sample(ADVICE, rng.randint(2, 8)) + [rng.choice(SAFETY_NETS)]
        answer = " ".join(parts)
        if 300 <= len(answer) <= 1000:
            pairs.append((rng.choice(QUESTIONS), answer))
    return pairs


def knowledge_phrases(knowledge: KnowledgeBase) -> set[str]:
    """Every phrase of the knowledge base and the guidelines, as the public loaders give them."""
    phrases = set(knowledge.drug_terms)
    for flag in knowledge.red_flags:
        phrases.update((*flag.triggers, *flag.requires_any, *flag.exclusions))
        phrases.update(word for rule in flag.near for words in rule.word_sets for word in words)
    for rule in knowledge.contraindications:
        phrases.update(rule.condition_terms)
    for guideline in load_guidelines(knowledge.directory):
        phrases.update(part for trigger in guideline.triggers for part in trigger.split("+"))
        phrases.update(guideline.context)
        phrases.update(phrase for point in (*guideline.must_advise, *guideline.must_not) for phrase in point.phrases)
        phrases.update(word for window in guideline.near for words in window.word_sets for word in words)
    for wordings in load_phrase_sets(knowledge.directory).values():
        phrases.update(wordings)
    return {" ".join(phrase.lower().split()) for phrase in phrases if phrase.strip()}


class NaiveGuard:
    """Baseline: the same phrases as ONE alternation regular expression (longest first, a trailing
    `*` as any word ending), every match counted in the question and the answer."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        self.phrases = sorted(knowledge_phrases(knowledge), key=lambda phrase: (-len(phrase), phrase))
        alternatives = (re.escape(phrase.removesuffix("*")) + (r"\w*" if phrase.endswith("*") else "")
                        for phrase in self.phrases)
        self.pattern = re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")
        self._questions: dict[str, int] = {}

    def _count(self, text: str) -> int:
        return sum(1 for _ in self.pattern.finditer(text.lower()))

    def check(self, prompt: str, response: str) -> int:
        in_question = self._questions.get(prompt)
        if in_question is None:
            in_question = self._questions[prompt] = self._count(prompt)
        return in_question + self._count(response)


@dataclass(frozen=True)
class Sample:
    """One contender's pass over its texts in one round."""

    wall_rate: float
    cpu_rate: float
    cpu_p50_ms: float
    cpu_p99_ms: float
    wall_p99_ms: float


def measure(check: Callable[[str, str], object], pairs: list[tuple[str, str]]) -> Sample:
    """One pass of `check` over `pairs`, timing every call in wall-clock and CPU time."""
    wall_latencies: list[float] = []
    cpu_latencies: list[float] = []
    timer, cpu_timer = time.perf_counter_ns, time.process_time_ns
    cpu_started, started = cpu_timer(), timer()
    for prompt, response in pairs:
        before, cpu_before = timer(), cpu_timer()
        check(prompt, response)
        cpu_latencies.append((cpu_timer() - cpu_before) / 1e6)
        wall_latencies.append((timer() - before) / 1e6)
    elapsed, cpu = (timer() - started) / 1e9, (cpu_timer() - cpu_started) / 1e9
    return Sample(len(pairs) / elapsed, len(pairs) / max(cpu, 1e-9), percentile(cpu_latencies, 0.5),
                  percentile(cpu_latencies, 0.99), percentile(wall_latencies, 0.99))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spread(values: Iterable[float], digits: int = 0) -> str:
    """`median [lowest-highest]`."""
    ordered = sorted(values)
    return (f"{statistics.median(ordered):,.{digits}f} "
            f"[{ordered[0]:,.{digits}f}-{ordered[-1]:,.{digits}f}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="Interleaved rounds (at least 5 for the report).")
    parser.add_argument("--pairs", type=int, default=3000, help="Answers per contender per round.")
    parser.add_argument("--naive-pairs", type=int, default=200,
                        help="Answers the naive baseline checks per round (the first of the guard's; it is slow).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the unseen text (each round adds its number).")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a target is missed.")
    parser.add_argument("--profile", action="store_true",
                        help="Also print where the guard's time goes on unseen text (cProfile, by own time).")
    args = parser.parse_args()
    if min(args.rounds, args.pairs, args.naive_pairs) < 1:
        parser.error("--rounds, --pairs and --naive-pairs must be at least 1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    guard = SafetyGuard()
    naive = NaiveGuard(guard.knowledge)
    repeated = repeated_corpus(args.pairs)
    unseen = [UnseenText(seed=args.seed + round_ + 1, knowledge=guard.knowledge).pairs(args.pairs)
              for round_ in range(args.rounds)]
    for prompt, response in repeated + UnseenText(seed=args.seed, knowledge=guard.knowledge).pairs(500):
        guard.check(prompt, response)  # warm up the memos of the repeated row, the code paths and the CPU
    for prompt, response in repeated[:50]:
        naive.check(prompt, response)
    gc.collect()
    gc.freeze()  # the knowledge base and indexes live for the whole process: keep them out of GC scans
    load = os.getloadavg()[0]
    contenders: dict[str, Callable[[int], Sample]] = {
        "guard, unseen text": lambda round_: measure(guard.check, unseen[round_]),
        "naive, unseen text": lambda round_: measure(naive.check, unseen[round_][: args.naive_pairs]),
        "guard, repeated sentences": lambda round_: measure(guard.check, repeated),
        "naive, repeated sentences": lambda round_: measure(naive.check, repeated[: args.naive_pairs]),
    }
    names = list(contenders)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            samples[name].append(contenders[name](round_))
    report(samples, unseen, repeated, naive, load, args.rounds, args.naive_pairs)
    target = samples["guard, unseen text"]
    cpu_rate = statistics.median(sample.cpu_rate for sample in target)
    cpu_p99 = statistics.median(sample.cpu_p99_ms for sample in target)
    met = cpu_rate >= TARGET_CHECKS_PER_CPU_SECOND and cpu_p99 <= TARGET_P99_MS
    print(f"target on unseen text (>= {TARGET_CHECKS_PER_CPU_SECOND:,} checks per CPU second, CPU p99 <= "
          f"{TARGET_P99_MS} ms): {'met' if met else 'MISSED'} ({cpu_rate:,.0f} checks per CPU s, p99 {cpu_p99:.3f} ms)")
    if args.profile:
        profile(guard, UnseenText(seed=args.seed + args.rounds + 1, knowledge=guard.knowledge).pairs(args.pairs))
    return 1 if args.strict and not met else 0


def report(samples: dict[str, list[Sample]], unseen: list[list[tuple[str, str]]], repeated: list[tuple[str, str]],
           naive: NaiveGuard, load: float, rounds: int, naive_pairs: int) -> None:
    lengths = [len(answer) for pairs in unseen for _, answer in pairs]
    print(f"unseen text: {len(unseen[0]):,} answers per round, {min(lengths)}-{max(lengths)} chars (median "
          f"{statistics.median(lengths):.0f}), 4 per question; repeated sentences: {len(repeated):,} answers from "
          f"{len(OPENINGS) + len(ADVICE) + len(SAFETY_NETS)} sentences; naive: one regex of {len(naive.phrases):,} "
          f"phrases, on the first {naive_pairs:,} answers of each")
    print(f"{rounds} interleaved rounds on one core; load average before the run {load:.2f} on {os.cpu_count()} "
          f"CPUs; guard modules: {compiled.summary()}")
    print("median [lowest-highest] over the rounds")
    print(f"{'contender':<27}{'checks/s wall':>24}{'checks per CPU s':>26}{'CPU p50 ms':>12}{'CPU p99 ms':>25}"
          f"{'wall p99 ms':>25}")
    for name, rows in samples.items():
        print(f"{name:<27}{spread(s.wall_rate for s in rows):>24}{spread(s.cpu_rate for s in rows):>26}"
              f"{statistics.median(s.cpu_p50_ms for s in rows):>12.3f}{spread((s.cpu_p99_ms for s in rows), 3):>25}"
              f"{spread((s.wall_p99_ms for s in rows), 3):>25}")
    for text in ("unseen text", "repeated sentences"):
        guard_rows, naive_rows = samples[f"guard, {text}"], samples[f"naive, {text}"]
        cpu = spread((g.cpu_rate / n.cpu_rate for g, n in zip(guard_rows, naive_rows)), 2)
        wall = spread((g.wall_rate / n.wall_rate for g, n in zip(guard_rows, naive_rows)), 2)
        print(f"guard / naive on {text}: {cpu}x per CPU second, {wall}x wall clock")


def profile(guard: SafetyGuard, pairs: list[tuple[str, str]]) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for prompt, response in pairs:
        guard.check(prompt, response)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    sys.exit(main())
