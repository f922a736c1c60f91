"""Dynamic batching against a recording backend: window, size cap, off switch, cancellation, errors."""

from __future__ import annotations

import asyncio

import pytest

from clinical_rlhf.serve.backends.base import GenerationRequest, GenerationResult
from clinical_rlhf.serve.batching import DynamicBatcher


class RecordingBackend:
    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.batches: list[list[str]] = []

    async def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        self.batches.append([request.prompt for request in batch])
        await asyncio.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("device lost")
        return [GenerationResult(f"answer to {r.prompt}", "stop", 1, 1) for r in batch]


def request(prompt: str) -> GenerationRequest:
    return GenerationRequest("completion", prompt=prompt)


def run(backend: RecordingBackend, max_batch_size: int, max_wait_ms: float, scenario):
    async def main():
        batcher = DynamicBatcher(backend.generate, max_batch_size, max_wait_ms)
        batcher.start()
        try:
            return await scenario(batcher)
        finally:
            await batcher.close()

    return asyncio.run(main())


def submit_all(prompts):
    async def scenario(batcher):
        return await asyncio.gather(*(batcher.submit(request(p)) for p in prompts))
    return scenario


def test_requests_within_the_window_are_generated_together_and_answered_in_order():
    backend = RecordingBackend()
    results = run(backend, 8, 200, submit_all([f"q{i}" for i in range(8)]))
    assert backend.batches == [[f"q{i}" for i in range(8)]]
    assert [r.text for r in results] == [f"answer to q{i}" for i in range(8)]


def test_batches_never_exceed_max_batch_size():
    backend = RecordingBackend()
    run(backend, 3, 50, submit_all([f"q{i}" for i in range(7)]))
    assert [len(batch) for batch in backend.batches] == [3, 3, 1]


def test_max_batch_size_one_turns_batching_off():
    backend = RecordingBackend()
    run(backend, 1, 0, submit_all([f"q{i}" for i in range(5)]))
    assert backend.batches == [[f"q{i}"] for i in range(5)]


def test_window_closes_max_wait_after_the_first_request():
    backend = RecordingBackend()

    async def scenario(batcher):
        first = asyncio.ensure_future(batcher.submit(request("early")))
        await asyncio.sleep(0.03)
        second = asyncio.ensure_future(batcher.submit(request("within")))
        await asyncio.sleep(0.6)  # past the 300 ms window
        third = asyncio.ensure_future(batcher.submit(request("late")))
        return await asyncio.gather(first, second, third)

    run(backend, 8, 300, scenario)
    assert backend.batches == [["early", "within"], ["late"]]


def test_requests_queued_during_generation_form_the_next_batch():
    backend = RecordingBackend(seconds=0.2)

    async def scenario(batcher):
        first = asyncio.ensure_future(batcher.submit(request("a")))
        await asyncio.sleep(0.05)  # "a" is generating now
        rest = [asyncio.ensure_future(batcher.submit(request(p))) for p in ("b", "c", "d")]
        return await asyncio.gather(first, *rest)

    run(backend, 8, 0, scenario)
    assert backend.batches == [["a"], ["b", "c", "d"]]


def test_a_request_nobody_waits_for_is_not_generated():
    backend = RecordingBackend(seconds=0.1)

    async def scenario(batcher):
        busy = asyncio.ensure_future(batcher.submit(request("busy")))
        await asyncio.sleep(0.02)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.submit(request("gave up")), 0.01)
        kept = await batcher.submit(request("kept"))
        return await busy, kept

    run(backend, 8, 0, scenario)
    assert backend.batches == [["busy"], ["kept"]]


def test_a_failed_generation_fails_every_request_of_the_batch():
    backend = RecordingBackend(fail=True)

    async def scenario(batcher):
        return await asyncio.gather(*(batcher.submit(request(p)) for p in ("a", "b")), return_exceptions=True)

    outcomes = run(backend, 8, 50, scenario)
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]


def test_close_finishes_what_is_queued():
    backend = RecordingBackend(seconds=0.05)

    async def main():
        batcher = DynamicBatcher(backend.generate, 2, 0)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(request(p))) for p in ("a", "b", "c")]
        await asyncio.sleep(0)
        await batcher.close()
        return [p.result().text for p in pending]

    assert asyncio.run(main()) == ["answer to a", "answer to b", "answer to c"]


@pytest.mark.parametrize("size, wait", [(0, 10), (4, -1)])
def test_bad_settings_name_the_argument(size, wait):
    with pytest.raises(ValueError, match="max_batch_size" if size < 1 else "max_wait_ms"):
        DynamicBatcher(RecordingBackend().generate, size, wait)
