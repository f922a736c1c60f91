"""What OpenAI-compatible clients send without being asked: model lookups and optional request
fields, with the official `openai` client and LangChain's `ChatOpenAI` against a real server."""

from __future__ import annotations

import openai
import pytest

from .conftest import MODEL, serving
from .scripted import SORE_THROAT, SORE_THROAT_ANSWER


@pytest.fixture(scope="module")
def server(make_cfg):
    with serving(make_cfg()) as url:
        yield url


@pytest.fixture(scope="module")
def client(server, api_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SORE_THROAT}],
                                          temperature=0, max_tokens=40, **kwargs)


def test_a_model_is_retrieved_by_id_and_an_unknown_one_is_not_found(client):
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.object == "model" and model.owned_by == "clinical-rlhf"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.body["code"] == "model_not_found" and MODEL in caught.value.body["message"]


def test_optional_fields_asking_for_the_default_are_accepted(client):
    response = ask(client, seed=7, user="clinician-12", n=1, response_format={"type": "text"}, logprobs=False,
                   presence_penalty=0, frequency_penalty=0.0)
    assert response.choices[0].message.content == SORE_THROAT_ANSWER
    chunks = list(ask(client, stream=True, stream_options={"include_usage": True}, seed=7))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == SORE_THROAT_ANSWER


@pytest.mark.parametrize(("field", "value"), [
    ("n", 2), ("logprobs", True), ("presence_penalty", 0.5), ("frequency_penalty", -1.0),
    ("response_format", {"type": "json_object"}),
])
def test_optional_fields_asking_for_something_else_are_refused_by_name(client, field, value):
    # OpenAI answers an invalid request with a 400 and its error shape (a 422 would surface in the
    # openai client as UnprocessableEntityError, which callers do not expect)
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, **{field: value})
    body = caught.value.body
    assert caught.value.status_code == 400 and set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error" and field in body["message"]


def test_langchain_chat_openai_invokes_and_streams(server, api_key):
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(model=MODEL, base_url=f"{server}/v1", api_key=api_key, temperature=0,
                                       max_tokens=40, max_retries=0, timeout=30)
    reply = chat.invoke(SORE_THROAT)
    assert reply.content == SORE_THROAT_ANSWER
    assert reply.response_metadata["finish_reason"] == "stop"
    assert "".join(chunk.content for chunk in chat.stream(SORE_THROAT)) == SORE_THROAT_ANSWER
