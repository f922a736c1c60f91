"""`serve.backend: openai_compatible`: a real HTTP upstream on loopback, still gated by our guard.

The upstream is a second instance of this server (as a vLLM server would be), and, to show that
our guard gates what any upstream says, a stand-in that answers every question unsafely.
"""

from __future__ import annotations

import json

import openai
import pytest
from fastapi import FastAPI, Request

from clinical_rlhf.errors import ClinicalRLHFError
from clinical_rlhf.serve import create_app, running_server

from .conftest import audit_path, serve_in_foreground, serving
from .scripted import OVERDOSE, OVERDOSE_ANSWER, SORE_THROAT, SORE_THROAT_ANSWER

UPSTREAM_KEY_VARIABLE = "TEST_UPSTREAM_KEY"


def remote_cfg(make_cfg, base_url: str, **remote):
    return make_cfg(serve={"backend": "openai_compatible", "served_model_name": "gated",
                           "remote": {"base_url": base_url, "api_key_env": UPSTREAM_KEY_VARIABLE, **remote}})


@pytest.fixture(scope="module")
def upstream(make_cfg):
    with serving(make_cfg()) as url:
        yield url


def test_answers_come_from_our_own_server_as_upstream(make_cfg, upstream, api_key):
    cfg = remote_cfg(make_cfg, f"{upstream}/v1")  # model discovered from the upstream's /v1/models
    with serving(cfg, environ={UPSTREAM_KEY_VARIABLE: api_key}) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)
        messages = [{"role": "user", "content": SORE_THROAT}]
        plain = client.chat.completions.create(model="gated", messages=messages, temperature=0, max_tokens=40)
        assert plain.choices[0].message.content == SORE_THROAT_ANSWER
        stream = client.chat.completions.create(model="gated", messages=messages, temperature=0, max_tokens=40,
                                                stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == SORE_THROAT_ANSWER
        prompt = f"Patient question: {SORE_THROAT}\nClinician answer:"
        completion = client.completions.create(model="gated", prompt=prompt, temperature=0, max_tokens=40)
        assert completion.choices[0].text.strip() == SORE_THROAT_ANSWER
    records = [json.loads(line) for line in audit_path(cfg).read_text().splitlines()]
    assert len(records) == 6 and {r["actor"] for r in records} == {"ward-7"}


def unsafe_upstream() -> FastAPI:
    """Answers everything with a tenfold overdose, in the OpenAI format (as a vLLM server would)."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "reckless-7b", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        assert body["model"] == "reckless-7b" and body["messages"][-1]["content"] == OVERDOSE
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "reckless-7b",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": OVERDOSE_ANSWER},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23}}

    return app


def test_an_unsafe_upstream_answer_never_reaches_the_client(make_cfg, api_key):
    with running_server(unsafe_upstream()) as reckless:
        cfg = remote_cfg(make_cfg, f"{reckless.url}/v1")
        with serving(cfg) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)
            messages = [{"role": "user", "content": OVERDOSE}]
            plain = client.chat.completions.create(model="gated", messages=messages)
            streamed = list(client.chat.completions.create(model="gated", messages=messages, stream=True))
    assert plain.choices[0].finish_reason == "content_filter"
    assert plain.model_extra["safety"]["reason_code"] == "dosage"
    assert "10 g" not in plain.choices[0].message.content
    assert "10 g" not in "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert plain.usage.completion_tokens == 11  # the upstream's count is passed on


def test_unreachable_upstream_is_502_with_a_clear_message(make_cfg, api_key):
    cfg = remote_cfg(make_cfg, "http://127.0.0.1:9/v1", model="any")  # port 9: discard, nothing listens
    with serving(cfg) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)
        with pytest.raises(openai.APIStatusError, match="cannot be reached") as caught:
            client.chat.completions.create(model="gated", messages=[{"role": "user", "content": SORE_THROAT}])
    assert caught.value.status_code == 502


def test_upstream_that_cannot_be_asked_for_its_model_stops_the_server_with_one_error(make_cfg):
    app = create_app(remote_cfg(make_cfg, "http://127.0.0.1:9/v1"), environ={})
    with pytest.raises(ClinicalRLHFError, match="cannot reach the generation server at http://127.0.0.1:9/v1"):
        serve_in_foreground(app)
