"""Throughput of the clinician-language reader (`safety/signs.py`) against its peer, the red-flag
detector, on the same normalised questions, measured in the same run.

    python benchmarks/clinical_signs_throughput.py             # 7 rounds
    python benchmarks/clinical_signs_throughput.py --rounds 15

Each round times both readers on every text (interleaved, so machine load hits both alike), each
call on a fresh `NormalisedText` of the same tokens so no per-text cache serves it (the guard's
per-sentence context memo still does, as in training). Prints the median and range of
microseconds per call and readings per CPU-second. Texts are the project's own: patient questions
without values (most of what the guard sees), and clinician notes full of values.
"""

from __future__ import annotations

import argparse
import statistics
import time

from clinical_rlhf.safety import SafetyGuard
from clinical_rlhf.safety.medications import ages_in
from clinical_rlhf.safety.normalize import NormalisedText
from clinical_rlhf.safety.signs import ClinicalSignsReader

TEXTS = {
    "patient, no values": "Can I take ibuprofen with my amlodipine? I am 54 and take 5 mg a day.",
    "patient, sore throat": "I've had a sore throat for three days and a mild cough, what can I take for it?",
    "parent, fever": "My 2 year old has had a fever of 39.2 since yesterday and is drinking less.",
    "clinician, 7 values": "78F from a care home, new confusion, RR 26, sats 91% RA, BP 96/60, HR 118, "
                           "T 38.6, query UTI. What next?",
    "clinician, rule": "Breathless since this morning, HR 112, previous DVT, 10 days post op, no haemoptysis.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="calls per text per round")
    args = parser.parse_args()
    guard = SafetyGuard()
    signs = ClinicalSignsReader(guard.knowledge, guard.context, guard.normalise.phrase_tokens)
    texts = {name: guard.normalise(text) for name, text in TEXTS.items()}
    ages = {name: ages_in(text.text, text.tokens) for name, text in texts.items()}
    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, text in texts.items():
            for side, read in (("signs", lambda t, n=name: signs.reasons(t, ages[n])),
                               ("red flags", guard.red_flags.current_flags)):
                fresh = [NormalisedText(text.text, text.tokens, text.obfuscated) for _ in range(args.calls)]
                started = time.thread_time()
                for copy in fresh:
                    read(copy)
                timings.setdefault((name, side), []).append((time.thread_time() - started) / args.calls * 1e6)
    print(f"{'text':<22} {'reader':<10} {'us/call median':>15} {'range':>15} {'calls/CPU-s':>12} {'x red flags':>12}")
    for name in texts:
        peer = statistics.median(timings[(name, "red flags")])
        for side in ("signs", "red flags"):
            values = timings[(name, side)]
            median = statistics.median(values)
            print(f"{name:<22} {side:<10} {median:15.1f} {min(values):7.1f}-{max(values):<7.1f} "
                  f"{1e6 / median:12,.0f} {median / peer:12.2f}")


if __name__ == "__main__":
    main()
