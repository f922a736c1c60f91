"""The official `openai` client against a running server on loopback, as a hospital's app would use it."""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest

from clinical_rlhf.safety import SafetyGuard, verify_audit_log

from .conftest import MODEL, audit_path, serving
from .scripted import (
    BLUE_LIPS, BLUE_LIPS_ANSWER, CHEST_PAIN, CHEST_PAIN_ANSWER, OVERDOSE, OVERDOSE_ANSWER, SORE_THROAT,
    SORE_THROAT_ANSWER,
)


@pytest.fixture(scope="module")
def server(make_cfg):
    cfg = make_cfg(safety={"audit": {"fsync": "always"}})
    with serving(cfg) as url:
        yield url, cfg


@pytest.fixture(scope="module")
def client(server, api_key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key=api_key, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, question: str, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                          temperature=0, max_tokens=40, **kwargs)


def streamed(client: openai.OpenAI, question: str) -> tuple[str, list]:
    chunks = list(ask(client, question, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_models_lists_the_served_model(client):
    assert [model.id for model in client.models.list()] == [MODEL]


def test_chat_completion_returns_the_models_answer(client):
    response = ask(client, SORE_THROAT)
    choice = response.choices[0]
    assert choice.message.content == SORE_THROAT_ANSWER
    assert choice.finish_reason == "stop"
    assert response.model_extra["safety"] == {"action": "allow", "fallback": False, "reason_code": None,
                                              "emergency": False, "red_flags": [], "flags": []}
    assert response.usage.completion_tokens > 0 and response.usage.prompt_tokens > 0


def test_stream_delivers_the_same_answer_in_chunks_then_the_verdict(client):
    text, chunks = streamed(client, SORE_THROAT)
    assert text == SORE_THROAT_ANSWER
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really chunked
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["safety"]["action"] == "allow"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_completions_plain_and_streamed(client):
    prompt = f"Patient question: {SORE_THROAT}\nClinician answer:"
    plain = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=40)
    assert plain.choices[0].text.strip() == SORE_THROAT_ANSWER
    pieces = client.completions.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=40, stream=True)
    assert "".join(chunk.choices[0].text for chunk in pieces) == plain.choices[0].text


def test_red_flag_question_gets_emergency_advice_first(client):
    advice = SafetyGuard().knowledge.red_flag("severe_breathing_difficulty").advice
    response = ask(client, BLUE_LIPS)
    content = response.choices[0].message.content
    assert content.startswith(advice)
    assert content.endswith(BLUE_LIPS_ANSWER)  # the model's own words follow the advice
    safety = response.model_extra["safety"]
    assert safety["emergency"] and safety["red_flags"] == ["severe_breathing_difficulty"]
    assert not safety["fallback"]


def test_rejected_answer_is_replaced_by_the_fallback_with_a_reason_code(client):
    response = ask(client, OVERDOSE)
    choice = response.choices[0]
    assert choice.finish_reason == "content_filter"
    assert "10 g" not in choice.message.content and "paracetamol" not in choice.message.content
    assert choice.message.content.startswith("I can't give you a safe answer")
    safety = response.model_extra["safety"]
    assert safety["fallback"] and safety["action"] == "reject" and safety["reason_code"] == "dosage"
    assert all("evidence" not in flag for flag in safety["flags"])


def test_downplayed_emergency_falls_back_to_emergency_advice(client):
    advice = SafetyGuard().knowledge.red_flag("acute_coronary_syndrome").advice
    response = ask(client, CHEST_PAIN)
    content = response.choices[0].message.content
    assert content.startswith(advice) and "indigestion" not in content
    assert response.model_extra["safety"]["reason_code"] == "red_flag_downplayed"


@pytest.mark.parametrize("question, unsafe", [(OVERDOSE, OVERDOSE_ANSWER), (CHEST_PAIN, CHEST_PAIN_ANSWER)])
def test_stream_never_carries_a_rejected_answer(server, api_key, question, unsafe):
    """Read the raw event stream: no byte of the rejected answer, only the fallback."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0,
            "max_tokens": 40, "stream": True}
    with httpx.stream("POST", f"{server[0]}/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {api_key}"}) as response:
        raw = response.read().decode()
    assert response.status_code == 200
    for fragment in ("10 g", "indigestion", unsafe[:20]):
        assert fragment not in raw
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    assert events[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert raw.rstrip().endswith("data: [DONE]")


def test_bad_or_missing_key_is_401(server):
    url = f"{server[0]}/v1"
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        openai.OpenAI(base_url=url, api_key="crl-not-a-key-of-this-server", max_retries=0).models.list()
    response = httpx.post(f"{url}/chat/completions", json={"model": MODEL, "messages": []})
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"


def test_unknown_model_is_404_naming_the_served_one(client):
    with pytest.raises(openai.NotFoundError, match=f"use `{MODEL}`"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_audit_holds_both_checks_by_key_id_and_never_the_key(server, client, api_key):
    ask(client, OVERDOSE)
    path = audit_path(server[1])
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert verify_audit_log(path).ok
    assert {record["actor"] for record in records} == {"ward-7"}
    last_prompt, last_answer = records[-2], records[-1]
    assert last_prompt["details"]["stage"] == "prompt" and last_answer["details"]["stage"] == "answer"
    assert last_answer["details"]["returned"] == "fallback" and last_answer["verdict"]["action"] == "reject"
    assert last_prompt["details"]["request_id"] == last_answer["details"]["request_id"]
    text = path.read_text()
    assert api_key not in text and OVERDOSE not in text and OVERDOSE_ANSWER not in text  # hashes only


def test_health_ready_and_metrics_without_text_or_keys(server, client, api_key, caplog):
    url = server[0]
    caplog.set_level(logging.DEBUG)
    ask(client, OVERDOSE)
    ask(client, SORE_THROAT, stream=True).close()
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/ready").json()["status"] == "ready"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'clinical_rlhf_serve_requests_total{endpoint="chat_completions",status="200"}' in metrics
    assert _value(metrics, 'clinical_rlhf_serve_fallbacks_total{reason="dosage"}') >= 1
    assert _value(metrics, 'clinical_rlhf_serve_guard_latency_seconds_count{stage="answer"}') >= 2
    assert _value(metrics, "clinical_rlhf_serve_batch_size_count") >= 2
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert "chat_completions 200" in logs  # the request log line is there...
    for secret in (api_key, OVERDOSE, OVERDOSE_ANSWER, SORE_THROAT, SORE_THROAT_ANSWER):
        assert secret not in metrics and secret not in logs  # ...but no key, question or answer
    assert "ward-7" not in metrics  # key ids are not labels either


def _value(exposition: str, series: str) -> float:
    line = next(line for line in exposition.splitlines() if line.startswith(series + " "))
    return float(line.rsplit(" ", 1)[1])


def test_keep_alive_requests_do_not_wait_for_delayed_acks(server):
    """With Nagle's algorithm on the server socket each keep-alive response stalls ~40 ms."""
    with httpx.Client(base_url=server[0]) as http:
        http.get("/health")
        times = []
        for _ in range(9):
            start = time.perf_counter()
            http.get("/health")
            times.append(time.perf_counter() - start)
    assert sorted(times)[4] < 0.02
