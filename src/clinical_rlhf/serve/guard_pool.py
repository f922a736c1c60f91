"""Guard checks in worker processes, each bounded in time.

A thread is not enough: the guard's compiled modules and the regular-expression engine hold the
GIL for a whole call, so a hostile 32,000-character answer checked in a thread still delays the
event loop (measured: 300 ms for `/health`). In a process it cannot touch the server at all, and
a check past its time limit is ended for real: its process is killed and a fresh one started.

Each worker builds its own guard (`guard_factory()`, e.g. `SafetyGuard.from_config(cfg)`) once,
then answers `(method, args)` messages one at a time over a pipe. The event loop hands a check to
an idle worker and waits for it in a helper thread blocked in `poll` (which releases the GIL).

The time limit bounds two waits apart. Waiting for a worker (all busy, or one still building its
guard) may take the limit: past it the check fails and nothing is killed. The check itself then
has the whole limit on its worker: only a check that runs past it is a runaway, whose process is
killed. Were the two one deadline, a burst of requests would hand a check that had queued for
most of it a few milliseconds on its worker, kill a healthy worker mid-check, and the
replacement's start-up (building its guard, ~1.5 s) would time out the checks queued behind it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger("clinical_rlhf.serve")

START_SECONDS = 120.0
"""Longest wait for a worker to build its guard at startup (loading the knowledge base)."""
_READY = "ready"


class GuardWorkerError(RuntimeError):
    """A worker died or its guard raised: the check counts as a guard failure (a reject)."""


def _serve(connection: Connection, guard_factory: Callable[[], Any]) -> None:
    """The worker process: build the guard, then answer checks until told to stop."""
    guard = guard_factory()
    connection.send(_READY)
    while True:
        message = connection.recv()
        if message is None:
            return
        method, args = message
        try:
            connection.send(("ok", getattr(guard, method)(*args)))
        except Exception as exc:  # noqa: BLE001 - the guard never raises; if it does, the parent rejects
            connection.send(("error", type(exc).__name__))


class _Worker:
    """One process and its end of the pipe; replaced in place when a check runs past its time."""

    def __init__(self, context, guard_factory: Callable[[], Any], name: str) -> None:
        self.context, self.guard_factory, self.name = context, guard_factory, name
        self.process = None
        self.connection: Connection | None = None
        self.ready = False

    def start(self) -> None:
        ours, theirs = self.context.Pipe()
        self.process = self.context.Process(target=_serve, args=(theirs, self.guard_factory), name=self.name,
                                            daemon=True)
        self.process.start()
        theirs.close()
        self.connection, self.ready = ours, False

    def wait_ready(self, timeout: float) -> bool:
        """Whether the worker has built its guard (its first message) within `timeout`."""
        if not self.ready and self.connection.poll(timeout):
            self.ready = self.connection.recv() == _READY
        return self.ready

    def call(self, message: tuple[str, tuple], ready_within: float, timeout: float) -> Any:
        """Send a check once the worker is ready (within `ready_within`) and wait for its answer;
        past `timeout` the process is killed and replaced."""
        if not self.wait_ready(ready_within):  # still building its guard (startup, replacement): left to finish
            raise TimeoutError
        try:
            self.connection.send(message)
            if not self.connection.poll(timeout):
                raise TimeoutError
            status, value = self.connection.recv()
        except TimeoutError:
            self.restart()
            raise
        except (EOFError, OSError) as exc:  # the process died (out of memory, killed)
            self.restart()
            raise GuardWorkerError(f"guard worker {self.name} died ({type(exc).__name__})") from None
        if status != "ok":
            raise GuardWorkerError(f"guard raised {value}")
        return value

    def restart(self) -> None:
        self.stop(kill=True)
        self.start()

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        try:
            if not kill:
                self.connection.send(None)
        except OSError:
            pass
        self.process.join(0 if kill else 2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()
        self.process = None


class GuardPool:
    """`workers` processes each running a guard; `await pool.call("check", prompt, answer)` returns
    the verdict, or raises TimeoutError when no worker was ready within `timeout_seconds` or the
    check ran longer than `timeout_seconds` on its worker (the module docstring says why apart)."""

    def __init__(self, guard_factory: Callable[[], Any], workers: int, timeout_seconds: float) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self.timeout_seconds = timeout_seconds
        self._workers = [_Worker(context, guard_factory, f"guard-{n}") for n in range(workers)]
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="guard-wait")
        self._idle: asyncio.Queue[_Worker] | None = None

    def start(self) -> None:
        """Start every worker process; each builds its guard in the background (see `wait_ready`)."""
        for worker in self._workers:
            worker.start()

    def wait_ready(self) -> None:
        """Block until every worker has built its guard (run it in a thread)."""
        for worker in self._workers:
            if not worker.wait_ready(START_SECONDS):
                raise GuardWorkerError(f"guard worker {worker.name} did not start within {START_SECONDS:g} s")

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def call(self, method: str, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self._idle is None:  # made on the loop that uses it
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        deadline = loop.time() + self.timeout_seconds
        worker = await asyncio.wait_for(self._idle.get(), self.timeout_seconds)
        future = loop.run_in_executor(self._threads, worker.call, (method, args),
                                      max(0.0, deadline - loop.time()), self.timeout_seconds)

        def release(done: asyncio.Future) -> None:
            # Back to the idle queue only once its thread is done with it, even if the request was cancelled.
            self._idle.put_nowait(worker)
            if not done.cancelled():
                done.exception()  # retrieved here when nobody awaits it any more

        future.add_done_callback(release)
        return await asyncio.shield(future)
