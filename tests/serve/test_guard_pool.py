"""The guard pool's two time limits: a wait for a worker and a check on a worker are bounded
apart, so a burst of checks queued behind busy workers fails safe without killing a worker that
is doing its job; only a check that itself runs past the limit has its worker replaced."""

from __future__ import annotations

import asyncio

import pytest

from clinical_rlhf.serve.guard_pool import GuardPool

from .slow_guard import slow_guard

LIMIT = 3.0
CHECK = 2.0
"""Each check below runs 2 s on the only worker, within the 3 s limit; the second waits 2 s for
the worker and then runs 2 s (4 s in all), the third would wait 4 s (past the limit)."""


@pytest.fixture
def pool():
    guards = GuardPool(slow_guard, workers=1, timeout_seconds=LIMIT)
    guards.start()
    guards.wait_ready()
    yield guards
    guards.close()


def test_a_queued_check_has_the_whole_limit_and_a_waiting_one_kills_nothing(pool):
    async def burst():
        first_pid = await pool.call("pause", 0.0)
        started = [asyncio.ensure_future(pool.call("pause", CHECK)) for _ in range(3)]
        results = await asyncio.gather(*started, return_exceptions=True)
        return first_pid, results, await pool.call("pause", 0.0)

    first_pid, (first, second, third), last_pid = asyncio.run(burst())
    assert first == first_pid and second == first_pid  # ran in time on the same worker
    assert isinstance(third, TimeoutError)  # waited past the limit for the worker: failed safe
    assert last_pid == first_pid  # and no worker was killed for it


def test_a_check_past_the_limit_replaces_its_worker(pool):
    async def runaway():
        first_pid = await pool.call("pause", 0.0)
        with pytest.raises(TimeoutError):
            await pool.call("pause", LIMIT + 2.0)
        await asyncio.to_thread(pool.wait_ready)  # the replacement builds its guard
        return first_pid, await pool.call("pause", 0.0)

    first_pid, replacement_pid = asyncio.run(runaway())
    assert replacement_pid != first_pid
