"""How late the server's event loop runs while hostile guard checks are under way: guard worker
processes (what `serve` does, `serve/guard_pool.py`) against the same checks in threads (the peer).

    python benchmarks/serve_guard_isolation.py [--rounds 5] [--seconds 4] [--strict]

The event loop is what answers `/health` and `/ready`: any time it cannot run is added to their
latency. Each round keeps `serve.guard_workers` (2) checks of 32,768-character hostile answers
(the slowest kinds the guard meets: dense drug lists, spaced-out letters, numbers with commas)
in flight for `--seconds`, while a probe sleeps 10 ms in a loop and records how late it wakes.
The two sides alternate round by round, so load from other jobs on the machine hits both alike.
Reported per side: median and maximum lag over all probes, and the range of the per-round
maxima. Target: the maximum lag with worker processes under 100 ms. `--strict` exits 1 if missed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from clinical_rlhf.safety import SafetyGuard  # noqa: E402
from clinical_rlhf.serve.guard_pool import GuardPool  # noqa: E402

TARGET_SECONDS = 0.100
WORKERS = 2
QUESTION = "What dose of ibuprofen can I take for a headache?"
HOSTILE = tuple(text[:32_768] for text in (
    "warfarin ibuprofen aspirin paracetamol " * 1000,
    "i b u p r o f e n " * 2000,
    "1,000 mg " * 5000,
))


class ThreadedGuard:
    """The peer: the same checks, in threads of this process."""

    def __init__(self) -> None:
        self.guard = SafetyGuard()
        self.threads = ThreadPoolExecutor(WORKERS)

    async def call(self, method: str, *args: str):
        return await asyncio.get_running_loop().run_in_executor(self.threads, getattr(self.guard, method), *args)


async def lags_during_checks(runner, seconds: float) -> list[float]:
    """Probe lags (s) while `WORKERS` hostile checks stay in flight for `seconds`."""
    deadline = time.perf_counter() + seconds

    async def keep_checking(offset: int) -> None:
        number = offset
        while time.perf_counter() < deadline:
            await runner.call("check", QUESTION, HOSTILE[number % len(HOSTILE)] + str(number))  # no cache hits
            number += WORKERS

    checks = [asyncio.create_task(keep_checking(offset)) for offset in range(WORKERS)]
    lags = []
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        await asyncio.sleep(0.010)
        lags.append(time.perf_counter() - start - 0.010)
    await asyncio.gather(*checks)
    return lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()

    pool = GuardPool(functools.partial(SafetyGuard), WORKERS, timeout_seconds=60.0)
    pool.start()
    pool.wait_ready()
    sides = {"worker processes": pool, "threads (peer)": ThreadedGuard()}
    lags: dict[str, list[float]] = {name: [] for name in sides}
    round_max: dict[str, list[float]] = {name: [] for name in sides}
    try:
        for _ in range(args.rounds):
            for name, runner in sides.items():
                measured = asyncio.run(lags_during_checks(runner, args.seconds))
                lags[name] += measured
                round_max[name].append(max(measured))
    finally:
        pool.close()
    print(f"event-loop lag while {WORKERS} hostile 32,768-character checks run ({args.rounds} rounds x "
          f"{args.seconds:g} s, sides alternating; the machine may be shared)")
    for name in sides:
        print(f"  {name:17s} median {statistics.median(lags[name]) * 1000:6.1f} ms"
              f"   max {max(lags[name]) * 1000:6.1f} ms   per-round max {min(round_max[name]) * 1000:.1f}-{max(round_max[name]) * 1000:.1f} ms"
              f"   ({len(lags[name])} probes)")
    worst = max(lags["worker processes"])
    met = worst < TARGET_SECONDS
    print(f"target: max lag with worker processes < {TARGET_SECONDS * 1000:.0f} ms: {'met' if met else 'MISSED'}")
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
