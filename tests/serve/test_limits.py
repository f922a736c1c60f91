"""Bad input and abuse get clear, OpenAI-style errors: 413, 400 (schema, caps, context), 429, 504."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

from clinical_rlhf.serve import hash_key, new_api_key

from .conftest import MODEL, audit_path, serving
from .scripted import SORE_THROAT

KEY, TIGHT_KEY = new_api_key(), new_api_key()


@pytest.fixture(scope="module")
def server(make_cfg):
    cfg = make_cfg(serve={
        "api_keys": [{"id": "ward-7", "sha256": hash_key(KEY)},
                     {"id": "tight", "sha256": hash_key(TIGHT_KEY), "requests_per_minute": 1}],
        "max_body_bytes": 4096, "rate_limit": {"requests_per_minute": 60000, "burst": 3},
        # Every answer times out: the batch window (300 ms) outlasts the timeout (100 ms).
        "generation_timeout_seconds": 0.1, "batching": {"max_wait_ms": 300},
    })
    with serving(cfg) as url:
        yield url, cfg


def post(url: str, body: bytes | dict, key: str = KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/chat/completions", content=content, timeout=30,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def test_body_over_the_limit_is_413(server):
    response = post(server[0], {"model": MODEL, "messages": [{"role": "user", "content": "x" * 5000}]})
    assert response.status_code == 413
    assert "serve.max_body_bytes" in response.json()["error"]["message"]


@pytest.mark.parametrize("body, says", [
    ({"model": MODEL}, "`messages`: Field required"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "`temperature`"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "logprobs": True},
     "`logprobs`: only false is supported"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": []},
     "`tools` is not supported by this server; supported fields: frequency_penalty"),
    ({"model": MODEL, "messages": [{"role": "assistant", "content": "hi"}]}, "last message must have role `user`"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000},
     "max_tokens 5000 is more than this server allows (1024"),
    (b"{not json", "the body is not valid JSON"),
])
def test_schema_errors_are_400_with_a_clear_message(server, body, says):
    response = post(server[0], body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


def test_prompt_longer_than_the_context_is_400(server):
    with pytest.raises(openai.BadRequestError, match="the model's context holds 256"):
        openai.OpenAI(base_url=f"{server[0]}/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "chest " * 300}], max_tokens=10)


def test_rate_limit_is_429_per_key_with_retry_after(server):
    statuses = [httpx.get(f"{server[0]}/v1/models", headers={"Authorization": f"Bearer {TIGHT_KEY}"}).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # burst of 3, then one a minute
    limited = httpx.get(f"{server[0]}/v1/models", headers={"Authorization": f"Bearer {TIGHT_KEY}"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert post(server[0], {"model": MODEL, "messages": []}).status_code == 400  # other keys unaffected


def test_generation_timeout_is_504_and_audited(server):
    with pytest.raises(openai.APIStatusError, match="no answer within 0.1 s") as caught:
        openai.OpenAI(base_url=f"{server[0]}/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": SORE_THROAT}], temperature=0, max_tokens=20)
    assert caught.value.status_code == 504
    last = json.loads(audit_path(server[1]).read_text().splitlines()[-1])
    assert last["event"] == "generation_failed" and last["details"]["code"] == "generation_timeout"
    assert last["actor"] == "ward-7"


class BrokenBackend:
    """A backend with a bug whose message quotes the request's text."""

    name = "broken"
    batches_requests = False

    def prepare(self, request):
        raise RuntimeError(f"cannot handle {request.messages[-1].content}")

    async def generate(self, batch):
        raise AssertionError("not reached")

    async def aclose(self) -> None:
        pass


def test_a_server_bug_is_500_and_its_message_stays_out_of_the_logs(make_cfg, api_key, caplog):
    caplog.set_level(logging.INFO)
    secret_question = "my neighbour John Smith has chest pain"
    with serving(make_cfg(), load_backend=BrokenBackend) as url:
        response = post(url, {"model": MODEL, "messages": [{"role": "user", "content": secret_question}]}, api_key)
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "request failed: RuntimeError" in logs and "John Smith" not in logs
