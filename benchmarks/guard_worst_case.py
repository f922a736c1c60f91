"""Worst-case inputs for the safety guard: how its cost grows with the length of hostile text.

    python benchmarks/guard_worst_case.py                   # 1 KB to 1 MB, as answers and as questions
    python benchmarks/guard_worst_case.py --side answer     # one table: the text as the answer
    python benchmarks/guard_worst_case.py --strict          # exit 1 when a 1 MB input misses the target
    python benchmarks/guard_worst_case.py --limit 30        # CPU seconds a single check may use

Six families of input, each 1 KB, 10 KB, 100 KB and 1 MB long (1 KB = 1,024 characters):

    numbers_with_commas  "1,000,000," repeated, as the answer to "What dose of paracetamol can I take?"
    dose_phrases         "take ibuprofen 400 mg every 6 hours, ..." with drugs from the knowledge base
    red_flag_phrases     red-flag triggers from the knowledge base, one after another
    triage_phrases       triage.yaml triggers (symptoms, modifiers, intents), some negated
    bidi_invisible       dosing sentences with right-to-left overrides, bidi isolates and invisible
                         characters (zero-width spaces and joiners, BOM, soft hyphen) between letters
    drug_soup            generic names, synonyms and brands of the knowledge base, comma-separated
    care_advice          care advice of every level (language.yaml) with conditions and same-day words,
                         no sentence end: the advice reader's windows (issue 19)

Each case runs in a subprocess of its own, forked from the process that built and warmed up the
guard (so no case sees another's memos), and is stopped when its check has used `--limit` CPU
seconds (or, on a very busy machine, ten times that in wall-clock seconds): the cell then reads
"> limit", and the family's longer inputs are "not run" (cost only grows with length). Each cell:
CPU seconds of the check (`time.thread_time` of the child's one thread, what the target is judged
on: other processes on a shared machine do not count), wall seconds, CPU milliseconds per KB (flat along a row when the
cost is linear) and the verdict's action. Target: every 1 MB input checked in < 2 CPU seconds.
The output prints the load average: wall figures on a busy machine are higher than CPU figures.
With the guard before issue 14's rewrite, the run takes about 2 minutes on a busy 2-core machine.

The families are also the inputs of the shape test (`tests/safety/test_linear_shape.py`), which
checks that the cost at 8n over the cost at n stays clearly below quadratic.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import os
import random
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from clinical_rlhf.config import SafetyConfig
from clinical_rlhf.knowledge import KnowledgeBase, load_knowledge
from clinical_rlhf.knowledge.language import load_language
from clinical_rlhf.knowledge.triage_data import load_triage
from clinical_rlhf.safety import SafetyGuard, compiled

SIZES: dict[str, int] = {"1 KB": 1024, "10 KB": 10 * 1024, "100 KB": 100 * 1024, "1 MB": 1024 * 1024}
TARGET_SECONDS_1MB = 2.0
DEFAULT_LIMIT_SECONDS = 5.0
WALL_FACTOR = 10
"""A check still running after this many times the CPU limit in wall-clock seconds is stopped too."""
SETUP_TIMEOUT_SECONDS = 60.0
"""Generous: forking and building a 1 MB text on a loaded machine."""
FORK = multiprocessing.get_context("fork")
"""Each case runs in a fork of the process that built the guard: no import or index building per case."""

# U+202E/U+202D overrides, U+2066-2069 isolates, U+200E/F marks; then invisible characters.
BIDI = ("\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f")
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
LANGUAGE = load_language()
CELL = 36
"""Width of a table cell."""
FREQUENCIES = ("every 4 hours", "every 6 hours", "twice a day", "three times daily", "once a week", "at night")


@dataclass(frozen=True)
class Family:
    name: str
    question: str
    """The question the text answers (unused with `--side question`, where the text is the question)."""
    unit: Callable[[random.Random, KnowledgeBase], str]
    """One piece of the text; pieces are drawn until the size is reached."""


def _dose_phrase(rng: random.Random, kb: KnowledgeBase) -> str:
    drug = rng.choice(kb.drugs)
    strength = rng.choice(drug.common_strengths_mg or (10.0,))
    return f"take {drug.name} {strength:g} mg {rng.choice(FREQUENCIES)}, "


def _red_flag_phrase(rng: random.Random, kb: KnowledgeBase) -> str:
    return f"{rng.choice(rng.choice(kb.red_flags).triggers)}, "


def _bidi_sentence(rng: random.Random, kb: KnowledgeBase) -> str:
    drug = rng.choice(kb.drugs)
    sentence = f"take {rng.randint(1, 4000)} mg of {drug.name} {rng.choice(FREQUENCIES)}. "
    return "".join(char + (rng.choice(BIDI + INVISIBLE) if rng.random() < 0.4 else "") for char in sentence)


def _triage_phrase(rng: random.Random, kb: KnowledgeBase) -> str:
    """A phrase of a triage rule (symptom, modifier, intent), negated now and then."""
    rule = rng.choice(load_triage(kb.directory).rules)
    return f"{rng.choice(('', 'no ', 'not '))}{rng.choice(rule.triggers)}{rng.choice((', ', '. ', ' and '))}"


def _drug_name(rng: random.Random, kb: KnowledgeBase) -> str:
    return f"{rng.choice(rng.choice(kb.drugs).terms)}{rng.choice((', ', ' and ', ' '))}"


def _care_advice(rng: random.Random, kb: KnowledgeBase) -> str:
    """Care advice of every level and conditions, no sentence end: each mention reads its window."""
    level = rng.choice(("emergency_advice", "urgent_advice", "routine_advice", "self_care_advice"))
    opener = rng.choice(LANGUAGE.phrases("advice_conditions_before") + ("", "", "and"))
    return f"{opener} {rng.choice(LANGUAGE.phrases(level))} {rng.choice(LANGUAGE.phrases('same_day_words'))} "


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family("numbers_with_commas", "What dose of paracetamol can I take?", lambda rng, kb: "1,000,000,"),
    Family("dose_phrases", "How much of my medicines can I take?", _dose_phrase),
    Family("red_flag_phrases", "Is this anything to worry about?", _red_flag_phrase),
    Family("triage_phrases", "Is this anything to worry about?", _triage_phrase),
    Family("bidi_invisible", "Is this dose safe for me?", _bidi_sentence),
    Family("drug_soup", "Can I take all of these together?", _drug_name),
    Family("care_advice", "I have crushing chest pain, what should I do?", _care_advice),
)}


def build_text(family: Family, size: int, seed: int = 0, knowledge: KnowledgeBase | None = None) -> str:
    """`size` characters of the family's text, the same for the same seed."""
    rng, kb = random.Random(seed), knowledge or load_knowledge()
    pieces, length = [], 0
    while length < size:
        piece = family.unit(rng, kb)
        pieces.append(piece)
        length += len(piece)
    return "".join(pieces)[:size]


def _check_in_child(guard: SafetyGuard, family_name: str, size: int, side: str, limit: float,
                    results: Connection) -> None:
    """Forked child: build the text, say "ready", time one check, send the figures. The kernel
    ends the child (SIGXCPU) once the check has used `limit` CPU seconds, even inside a
    regular-expression search that Python could not interrupt."""
    family = FAMILIES[family_name]
    text = build_text(family, size, knowledge=guard.knowledge)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(time.process_time() + limit)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    results.send("ready")
    # The thread's clock, not the process's: with a CPU limit set, Linux samples the process clock
    # at scheduler ticks, too coarse for a check of a millisecond (the child has one thread).
    cpu_started, started = time.thread_time(), time.perf_counter()
    verdict = guard.check_prompt(text) if side == "question" else guard.check(family.question, text)
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    results.send({"wall": wall, "cpu": cpu, "action": verdict.action})


def measure_case(guard: SafetyGuard, family_name: str, size: int, side: str, limit: float) -> dict | str:
    """The figures of one check in a child forked from this process (a copy of `guard` as it was
    built and warmed up, no memo of another case), or why there are none: over the CPU limit, or
    over the wall-clock backstop (`WALL_FACTOR` times the limit, for a machine so busy that the
    CPU limit is not reached in reasonable time)."""
    receiver, sender = FORK.Pipe(duplex=False)
    child = FORK.Process(target=_check_in_child, args=(guard, family_name, size, side, limit, sender))
    child.start()
    sender.close()  # the child holds its own end: a dead child reads as end-of-file here
    try:
        if not receiver.poll(SETUP_TIMEOUT_SECONDS) or receiver.recv() != "ready":
            raise RuntimeError(f"{family_name} {size}: the child did not get ready (exit code {child.exitcode})")
        if not receiver.poll(limit * WALL_FACTOR):
            return f"> {limit * WALL_FACTOR:g} wall s"
        try:
            return receiver.recv()
        except EOFError:
            child.join()
            if child.exitcode == -signal.SIGXCPU:
                return f"> {limit:g} CPU s"
            raise RuntimeError(f"{family_name} {size}: the child exited with code {child.exitcode} without a result")
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()


def table(guard: SafetyGuard, side: str, families: list[str], limit: float) -> list[str]:
    """Print one side's table; return the families whose 1 MB input missed the target."""
    print(f"\ntext as the {side}; limit {limit:g} CPU s per check; each cell: CPU s, wall s, CPU ms per KB, verdict")
    print(f"{'family':<20}" + "".join(f"{label:>{CELL}}" for label in SIZES))
    missed = []
    for family_name in families:
        cells, over = [], False
        for label, size in SIZES.items():
            result = "not run" if over else measure_case(guard, family_name, size, side, limit)
            if isinstance(result, str):
                over = True
                cells.append(result)
            else:
                cells.append(f"{result['cpu']:.4f} {result['wall']:.4f} {1000 * result['cpu'] / (size / 1024):.3f} "
                             f"{result['action']}")
            if label == "1 MB" and (isinstance(result, str) or result["cpu"] >= TARGET_SECONDS_1MB):
                missed.append(f"{family_name} ({side})")
        print(f"{family_name:<20}" + "".join(f"{cell:>{CELL}}" for cell in cells), flush=True)
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("answer", "question", "both"), default="both",
                        help="Where the text goes: the answer to the family's question, the question itself, or "
                             "one table for each (default).")
    parser.add_argument("--limit", type=float, default=DEFAULT_LIMIT_SECONDS, help="CPU seconds one check may use.")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--strict", action="store_true", help="Exit 1 when a 1 MB input misses the target.")
    args = parser.parse_args()
    if not args.limit > 0:
        parser.error("--limit must be a positive number of CPU seconds")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core; children inherit it
    # read every size in full, whatever safety.max_text_chars says (its default is 1 MiB, the largest size)
    guard = SafetyGuard(config=SafetyConfig(max_text_chars=max(SIZES.values())))
    guard.check("How much ibuprofen can I take?", "Ibuprofen 400 mg three times a day with food.")  # warm up
    gc.collect()
    print(f"guard modules: {compiled.summary()}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    missed = []
    for side in ("answer", "question") if args.side == "both" else (args.side,):
        missed += table(guard, side, args.families, args.limit)
    print(f"\ntarget (each 1 MB input < {TARGET_SECONDS_1MB:g} CPU s): "
          + ("met" if not missed else f"MISSED by {', '.join(missed)}"))
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
