"""The one bound of the timed cost-shape tests (`-m cost_shape`): they time a check at n and at
8n characters and hold the ratio of CPU times to 32x at most.

Linear cost reads 8x and quadratic 64x. Room above linear is needed: a linear pass's cost a
character grows as its lists outgrow the caches. At a 16x bound the guard as it stood before
2026-12-08 (95dcb9c, compiled) failed one run in three on an idle 2-core machine here (28.4x,
triage phrases as the answer), and one walk of the offset map read 22x in CI; those walks are
now checked by counting what they read (`test_reading.py`), which needs no room. These tests
judge shape only; speed is the benchmarks' business (`benchmarks/guard_worst_case.py`: 1 MB inputs).
"""

from __future__ import annotations

from collections.abc import Callable

GROWTH = 8
MAX_RATIO = 32.0


def assert_linear_shape(seconds: Callable[[int], float], n: int, what: str) -> None:
    """Fail when `seconds(GROWTH * n) / seconds(n)` (CPU seconds of one run at that many
    characters) is above `MAX_RATIO`."""
    ratio = seconds(GROWTH * n) / seconds(n)
    assert ratio <= MAX_RATIO, (f"{what}: {GROWTH}x the length ({n:,} -> {GROWTH * n:,} characters) cost "
                                f"{ratio:.1f}x the CPU time, above {MAX_RATIO:g}x (linear: {GROWTH}x, "
                                f"quadratic: {GROWTH ** 2}x)")
