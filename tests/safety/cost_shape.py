"""The one bound of the cost-shape tests (`-m cost_shape`): they time a piece of the guard at n
and at 8n characters and hold the ratio of CPU times to 32x at most.

Linear cost reads 8x and quadratic 64x. Room above linear is needed: a linear walk's cost a
character grows as its lists outgrow the caches, the more so beside a busy neighbour. Measured
for the offset map's walks at n = 16,384: up to 13x on an idle machine here, 21x beside a process
streaming memory, 22x in CI. A 16x bound failed CI on a linear walk. These tests judge shape
only; speed is the benchmarks' business (`benchmarks/guard_worst_case.py`: 1 MB inputs).
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
