"""A bounded load test on loopback: concurrent clients, no errors, no lost audit record."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai

from clinical_rlhf.safety import verify_audit_log

from .conftest import BUSY_GUARD_LIMIT, MODEL, audit_path, serving
from .scripted import OVERDOSE, SCRIPT, SORE_THROAT, SORE_THROAT_ANSWER

REQUESTS = 64
CONCURRENCY = 16
TIME_LIMIT = 60.0


async def _load(url: str, api_key: str) -> list[tuple[str, str, str]]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)
    questions = list(SCRIPT)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> tuple[str, str, str]:
        question = questions[i % len(questions)]
        messages = [{"role": "user", "content": question}]
        async with limit:
            if i % 2:
                stream = await client.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                                              max_tokens=40, stream=True)
                chunks = [chunk async for chunk in stream]
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
            else:
                response = await client.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                                                max_tokens=40)
                text, finish = response.choices[0].message.content, response.choices[0].finish_reason
        return question, text, finish

    try:
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(REQUESTS))), TIME_LIMIT)
    finally:
        await client.close()


def test_concurrent_load_has_no_errors_and_no_lost_audit_records(make_cfg, api_key):
    cfg = make_cfg(serve={"rate_limit": {"requests_per_minute": None}, "batching": {"max_wait_ms": 20},
                          "guard_timeout_seconds": BUSY_GUARD_LIMIT},
                   safety={"audit": {"fsync": "always"}})
    with serving(cfg) as url:
        start = time.monotonic()
        results = asyncio.run(_load(url, api_key))
        elapsed = time.monotonic() - start
        metrics = httpx.get(f"{url}/metrics").text
    assert len(results) == REQUESTS and elapsed < TIME_LIMIT
    for question, text, finish in results:  # every answer is the right one for its question
        if question == SORE_THROAT:
            assert (text, finish) == (SORE_THROAT_ANSWER, "stop")
        elif question == OVERDOSE:
            assert finish == "content_filter" and "10 g" not in text
    records = [json.loads(line) for line in audit_path(cfg).read_text().splitlines()]
    assert verify_audit_log(audit_path(cfg)).ok
    assert len(records) == 2 * REQUESTS
    request_ids = {r["details"]["request_id"] for r in records}
    assert len(request_ids) == REQUESTS  # two records (prompt, answer) for each request
    batches = _value(metrics, "clinical_rlhf_serve_batch_size_count")
    assert _value(metrics, "clinical_rlhf_serve_batch_size_sum") == REQUESTS
    assert batches < REQUESTS / 2  # requests really were generated together
    answered = [line for line in metrics.splitlines()
                if line.startswith('clinical_rlhf_serve_requests_total{endpoint="chat_completions"')]
    assert answered == [f'clinical_rlhf_serve_requests_total{{endpoint="chat_completions",status="200"}} {REQUESTS}.0']


def _value(exposition: str, series: str) -> float:
    line = next(line for line in exposition.splitlines() if line.startswith(series + " "))
    return float(line.rsplit(" ", 1)[1])
