"""Safety guard throughput on one core: checks per second and p50/p99 latency on realistic
300-1,000-character answers with the full knowledge base, against a naive baseline (every
phrase tried in turn as its own regular expression) measured in the same run.

    python benchmarks/guard_throughput.py            # ~15 s
    python benchmarks/guard_throughput.py --strict   # exit 1 when a target is missed
    python benchmarks/guard_throughput.py --profile  # and where the time goes
    CLINICAL_RLHF_PURE_PYTHON=1 python benchmarks/guard_throughput.py   # the plain-Python guard

The output says whether the guard's modules run compiled (Cython, built by `pip install -e .` when
a C compiler is present) or as plain Python (`clinical_rlhf.safety.compiled`, docs/safety.md).

Targets (issue 3): >= 20,000 checks/s and p99 <= 0.5 ms. Questions repeat across answers, as in
training (several sampled answers per prompt), so the guard's per-question analysis is cached.
Every answer is distinct, but answers are built from a few dozen sentences, as a policy sampled
from a model trained on the templated corpus writes them; the guard keeps what it reads per
sentence (`docs/safety.md`, "Throughput"), so a second row measures answers in which no sentence
ever repeats (each carries a unique reference number), the guard's cost on text it has never seen.
The targets are judged on the first row.
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

from clinical_rlhf.safety import SafetyGuard, compiled

TARGET_CHECKS_PER_SECOND = 20_000
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


def corpus(size: int, seed: int = 0, new_sentences: bool = False) -> list[tuple[str, str]]:
    """(question, answer) pairs; every answer is 300 to 1,000 characters long. With
    `new_sentences` every sentence ends with a reference number used once ("... fluids (ref
    10001)."): five digits are neither a dose, a count, an age nor a year to the guard."""
    rng = random.Random(seed)
    pairs = []
    reference = 10_000
    while len(pairs) < size:
        parts = [rng.choice(OPENINGS)] + rng.sample(ADVICE, rng.randint(2, 8)) + [rng.choice(SAFETY_NETS)]
        if new_sentences:
            tagged = []
            for part in parts:
                reference += 1
                tagged.append(f"{part[:-1]} (ref {reference}){part[-1]}")
            parts = tagged
        answer = " ".join(parts)
        if 300 <= len(answer) <= 1000 + (120 if new_sentences else 0):
            pairs.append((rng.choice(QUESTIONS), answer))
    return pairs


class NaiveGuard:
    """Baseline: the same phrases, each compiled as its own pattern and tried in turn."""

    def __init__(self, guard: SafetyGuard) -> None:
        phrases = set()
        for index in (guard.red_flags.triggers, guard.red_flags.requirements, guard.red_flags.emergency_advice,
                      guard.red_flags.downplay, guard.medications.drug_terms, guard.medications.conditions):
            phrases.update(" ".join(phrase) for phrase, _ in index.phrases)
        self.patterns = [re.compile(rf"\b{re.escape(p)}\b") for p in sorted(phrases)]

    def check(self, prompt: str, response: str) -> int:
        hits = 0
        for text in (prompt.lower(), response.lower()):
            for pattern in self.patterns:
                if pattern.search(text):
                    hits += 1
        return hits


def measure(check, pairs: list[tuple[str, str]], seconds: float,
            once: bool = False) -> tuple[float, float, list[float], list[float]]:
    """(checks per wall-clock second, checks per CPU second of this process, per-check wall
    latencies in ms, per-check CPU latencies in ms) over whole passes until `seconds` elapse
    (`once`: one pass, for answers that must not be seen twice). CPU time (`time.process_time`)
    leaves out the time other processes held the core, so it is the fairer figure on a shared
    machine; wall time is what a user sees."""
    latencies: list[float] = []
    cpu_latencies: list[float] = []
    timer, cpu_timer = time.perf_counter, time.process_time_ns
    cpu_started, started = time.process_time(), timer()
    while timer() - started < seconds:
        for prompt, response in pairs:
            before, cpu_before = timer(), cpu_timer()
            check(prompt, response)
            cpu_latencies.append((cpu_timer() - cpu_before) / 1e6)
            latencies.append((timer() - before) * 1000)
        if once:
            break
    elapsed, cpu = timer() - started, time.process_time() - cpu_started
    return len(latencies) / elapsed, len(latencies) / cpu, latencies, cpu_latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="Measuring time per contender.")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a target is missed.")
    parser.add_argument("--profile", action="store_true",
                        help="Also print where the guard's time goes (cProfile, top functions by own time).")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    guard = SafetyGuard()
    naive = NaiveGuard(guard)
    pairs = corpus(args.pairs)
    lengths = [len(answer) for _, answer in pairs]
    for prompt, response in pairs[:200]:  # warm up caches and the CPU
        guard.check(prompt, response)
    gc.collect()
    gc.freeze()  # the knowledge base and indexes live for the whole process: keep them out of GC scans
    load = os.getloadavg()[0]
    rate, cpu_rate, latencies, cpu_latencies = measure(guard.check, pairs, args.seconds)
    # Enough answers with never-seen sentences for one pass of about `seconds`.
    fresh = corpus(max(args.pairs, int(cpu_rate * args.seconds / 2)), seed=1, new_sentences=True)
    new_rate, new_cpu_rate, new_latencies, new_cpu = measure(guard.check, fresh, args.seconds, once=True)
    naive_rate, naive_cpu_rate, naive_latencies, naive_cpu = measure(naive.check, pairs[: max(50, args.pairs // 10)],
                                                                     min(args.seconds, 4.0))
    p99 = percentile(latencies, 0.99)
    print(f"answers: {len(pairs)} distinct, {min(lengths)}-{max(lengths)} chars (mean {statistics.mean(lengths):.0f})"
          f" from {len(OPENINGS) + len(ADVICE) + len(SAFETY_NETS)} sentences; {len(QUESTIONS)} questions; knowledge "
          f"base: {len(guard.knowledge.drugs)} drugs, {len(naive.patterns)} phrases")
    print(f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs")
    print(f"guard modules: {compiled.summary()}")
    print(f"{'contender':<30}{'checks/s':>10}{'per CPU s':>11}{'p50 ms':>9}{'p99 ms':>9}{'CPU p50':>9}{'CPU p99':>9}")
    for name, (wall, cpu, lat, cpu_lat) in (
            ("guard (indexed)", (rate, cpu_rate, latencies, cpu_latencies)),
            (f"guard, {len(fresh):,} new sentences", (new_rate, new_cpu_rate, new_latencies, new_cpu)),
            ("naive (each pattern)", (naive_rate, naive_cpu_rate, naive_latencies, naive_cpu))):
        print(f"{name:<30}{wall:>10,.0f}{cpu:>11,.0f}{percentile(lat, .5):>9.3f}{percentile(lat, .99):>9.3f}"
              f"{percentile(cpu_lat, .5):>9.3f}{percentile(cpu_lat, .99):>9.3f}")
    print(f"speed-up over naive: {cpu_rate / naive_cpu_rate:.1f}x per CPU second, {rate / naive_rate:.1f}x wall clock")
    met = cpu_rate >= TARGET_CHECKS_PER_SECOND and p99 <= TARGET_P99_MS
    print(f"targets (>= {TARGET_CHECKS_PER_SECOND:,} checks per CPU second, p99 <= {TARGET_P99_MS} ms): "
          f"{'met' if met else 'MISSED'}")
    if args.profile:
        profile(guard, pairs)
    return 1 if args.strict and not met else 0


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
