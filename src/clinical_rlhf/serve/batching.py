"""Dynamic batching: requests that arrive within a short window are generated together.

One collector task takes the first waiting request, then gathers more until the batch holds
`max_batch_size` requests or `max_wait` has passed since that first request arrived, and hands
the batch to the backend. While a batch generates, new requests queue up; they form the next
batch at once (their window has usually passed already). Requests whose caller stopped waiting
(timeout, disconnect) are dropped before generation. `max_batch_size=1` turns batching off:
requests are generated one after the other, in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from clinical_rlhf.serve.backends.base import GenerationRequest, GenerationResult
from clinical_rlhf.serve.metrics import ServeMetrics

GenerateBatch = Callable[[list[GenerationRequest]], Awaitable[list[GenerationResult]]]


@dataclass
class _Waiting:
    request: GenerationRequest
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    """Usage: `batcher.start()` in the app's lifespan, `await batcher.submit(request)` per request,
    `await batcher.close()` at shutdown (it finishes what is queued first)."""

    def __init__(self, generate: GenerateBatch, max_batch_size: int, max_wait_ms: float,
                 metrics: ServeMetrics | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.generate = generate
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics
        self._queue: asyncio.Queue[_Waiting | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self.batch_sizes: list[int] = []
        """Size of every batch generated (for tests and the benchmark)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dynamic-batcher")

    async def close(self) -> None:
        """Generate what is still queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def submit(self, request: GenerationRequest) -> GenerationResult:
        if self._task is None:
            raise RuntimeError("the batcher is not running")
        waiting = _Waiting(request, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(waiting)
        return await waiting.future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch, stopping = await self._collect(first)
            await self._generate([w for w in batch if not w.future.done()])
        while not self._queue.empty():  # anything put after the stop marker
            leftover = self._queue.get_nowait()
            if leftover is not None and not leftover.future.done():
                leftover.future.set_exception(RuntimeError("the server is shutting down"))

    async def _collect(self, first: _Waiting) -> tuple[list[_Waiting], bool]:
        batch = [first]
        window_end = first.arrived + self.max_wait
        while len(batch) < self.max_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    async def _generate(self, batch: list[_Waiting]) -> None:
        if not batch:
            return
        start = time.monotonic()
        self.batch_sizes.append(len(batch))
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(batch))
            for waiting in batch:
                self.metrics.queue_wait.observe(start - waiting.arrived)
        try:
            results = await self.generate([w.request for w in batch])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(exc)
            return
        finally:
            if self.metrics is not None:
                self.metrics.generation_latency.observe(time.monotonic() - start)
        for waiting, result in zip(batch, results):
            if not waiting.future.done():
                waiting.future.set_result(result)
