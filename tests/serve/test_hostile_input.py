"""A slow guard check cannot stall the server, each request's guard work is bounded in time, free
text is capped (400 in OpenAI's error shape), and the audit chain's anchor is exported."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time

import httpx
import pytest

from clinical_rlhf.serve import create_app, running_server
from clinical_rlhf.serve.guard_pool import GuardPool
from clinical_rlhf.serve.schemas import MAX_CONVERSATION_CHARS, MAX_TEXT_CHARS

from .conftest import MODEL, audit_path, wait_ready
from .scripted import SORE_THROAT
from .slow_guard import SLOW_MARKER, slow_guard

@contextlib.contextmanager
def slow_guard_server(make_cfg, **serve):
    cfg = make_cfg(serve={"guard_timeout_seconds": 2.0, "audit_anchor_seconds": 0.2, **serve})
    app = create_app(cfg, environ={})
    app.state.serving.gate.pool = GuardPool(slow_guard, workers=2, timeout_seconds=2.0)
    with running_server(app) as server:
        wait_ready(server.url)
        yield server.url, cfg


def _post(url: str, key: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30, headers={"Authorization": f"Bearer {key}"})


def _chat(url: str, key: str, content: str) -> httpx.Response:
    return _post(url, key, "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": content}],
                                                     "temperature": 0, "max_tokens": 20})


@pytest.fixture(scope="module")
def server(make_cfg):
    with slow_guard_server(make_cfg) as served:
        yield served


def test_health_and_ready_answer_while_a_slow_feedback_check_runs(server, api_key):
    """Order, not speed (timings live in benchmarks/serve_guard_isolation.py): the probes come back while the
    slow check is still running; on the event loop it would hold them until it ended."""
    url, cfg = server
    served = _chat(url, api_key, SORE_THROAT).json()
    results: dict[str, httpx.Response] = {}
    slow = threading.Thread(target=lambda: results.update(feedback=_post(url, api_key, "/v1/feedback", {
        "completion_id": served["id"], "corrected_answer": f"Rest and fluids. {SLOW_MARKER}"})))
    slow.start()
    time.sleep(0.2)  # the slow check is running now
    with httpx.Client(timeout=30) as client:
        for path in ("/health", "/ready", "/health"):
            assert client.get(f"{url}{path}").status_code == 200
    answered_while_checking = slow.is_alive()
    slow.join()
    assert answered_while_checking
    # The check ran past serve.guard_timeout_seconds (2 s): its worker was killed, the correction is
    # quarantined (unchecked is not clean).
    body = results["feedback"].json()
    assert results["feedback"].status_code == 200 and body["status"] == "quarantined", body
    assert body["correction_safety"]["flags"][0]["category"] == "guard_error"
    again = _post(url, api_key, "/v1/feedback", {"completion_id": served["id"],
                                                 "corrected_answer": "Rest, drink fluids and try throat lozenges."})
    assert again.json()["status"] == "recorded", again.text  # checked by the replacement worker


def test_a_timed_out_answer_check_returns_the_fallback(server, api_key):
    response = _chat(server[0], api_key, f"{SORE_THROAT} {SLOW_MARKER}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety"]["fallback"] and body["safety"]["reason_code"] == "guard_error"
    assert body["safety"]["flags"][0]["subtype"] == "timeout"


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL, "messages": [{"role": "user", "content": "x" * (MAX_TEXT_CHARS + 1)}]}, "messages.0.content"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x" * MAX_TEXT_CHARS}] * 5}, "messages"),
    ({"model": "m" * 300, "messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stop": ["s" * 300]}, "stop"),
])
def test_free_text_over_its_cap_is_400_in_openai_shape(server, api_key, body, param):
    response = _post(server[0], api_key, "/v1/chat/completions", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["param"].startswith(param) and "x" * 50 not in error["message"]


def test_caps_cover_completions_and_feedback(server, api_key):
    url = server[0]
    completion = _post(url, api_key, "/v1/completions", {"model": MODEL, "prompt": "x" * (MAX_TEXT_CHARS + 1)})
    feedback = _post(url, api_key, "/v1/feedback", {"completion_id": "c", "corrected_answer": "y" * (MAX_TEXT_CHARS + 1)})
    assert completion.status_code == 400 and completion.json()["error"]["param"] == "prompt"
    assert feedback.status_code == 400 and feedback.json()["error"]["param"] == "corrected_answer"
    assert MAX_CONVERSATION_CHARS > MAX_TEXT_CHARS


def test_the_audit_anchor_is_exported_and_logged(make_cfg, api_key, caplog):
    caplog.set_level(logging.INFO, logger="clinical_rlhf.serve")
    with slow_guard_server(make_cfg) as (url, cfg):
        assert _chat(url, api_key, SORE_THROAT).status_code == 200
        time.sleep(0.5)  # a periodic anchor (every 0.2 s) after the request's two records
        exported = httpx.get(f"{url}/metrics").text
    records = [json.loads(line) for line in audit_path(cfg).read_text().splitlines()]
    assert f"clinical_rlhf_serve_audit_chain_records {float(len(records))}" in exported
    assert f'clinical_rlhf_serve_audit_chain_head_info{{head_hash="{records[-1]["hash"]}"}} 1.0' in exported
    assert f"count={len(records)} head={records[-1]['hash']}" in caplog.text  # the shutdown anchor
