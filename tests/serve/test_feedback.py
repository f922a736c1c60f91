"""`POST /v1/feedback`: served completions are rated or corrected by id and become preference pairs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from clinical_rlhf.errors import ClinicalRLHFError
from clinical_rlhf.feedback import load_preferences
from clinical_rlhf.feedback.quarantine import read_quarantine
from clinical_rlhf.safety import verify_audit_log
from clinical_rlhf.serve import create_app
from clinical_rlhf.serve.feedback import CompletionStore, Rated, RatingIndex, ServedCompletion

from .conftest import BUSY_GUARD_LIMIT, MODEL, audit_path, serve_in_foreground, serving
from .scripted import OVERDOSE, SORE_THROAT, SORE_THROAT_ANSWER

SAFE_CORRECTION = "Rest, drink warm fluids, and see a doctor if it lasts more than a week or you have a high fever."
UNSAFE_CORRECTION = "Take 10 g of paracetamol at once, it is safe."


@pytest.fixture(scope="module")
def server(make_cfg):
    cfg = make_cfg(safety={"audit": {"fsync": "always"}},
                   serve={"rate_limit": {"requests_per_minute": 60000, "burst": 1000},
                          "guard_timeout_seconds": BUSY_GUARD_LIMIT})
    with serving(cfg) as url:
        yield url, cfg


def preferences_path(cfg) -> Path:
    return cfg.run_dir / "feedback" / "preferences.jsonl"


def chat(url: str, key: str, messages: list[dict] | str, **kwargs) -> dict:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body = {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 40, **kwargs}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def post_feedback(url: str, key: str | None, body: dict | bytes) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v1/feedback", content=content, timeout=30,
                      headers={**headers, "Content-Type": "application/json"})


def by_id(cfg) -> dict:
    return {record.id: record for record in load_preferences(preferences_path(cfg))}


def quarantine_records(cfg) -> list[dict]:
    path = cfg.run_dir / "feedback" / "quarantine.jsonl"
    return read_quarantine(path) if path.exists() else []


def audit_events(cfg, event: str = "feedback") -> list[dict]:
    return [record for record in map(json.loads, audit_path(cfg).read_text().splitlines())
            if record["event"] == event]


# ----------------------------------------------------------------------------- corrections


def test_a_correction_becomes_a_preference_for_it_over_the_served_answer(server, api_key):
    url, cfg = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=30)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": SORE_THROAT}],
                                           temperature=0, max_tokens=40)
    assert reply.choices[0].message.content == SORE_THROAT_ANSWER
    response = post_feedback(url, api_key, {
        "completion_id": reply.id, "corrected_answer": f"  {SAFE_CORRECTION}\n", "rationale": "mention fever",
        "objectives": {"guidelines": "corrected", "safety": "tie", "coherence": "served"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("feedback-") and body["status"] == "recorded"
    assert body["correction_safety"]["action"] == "allow" and body["correction_safety"]["flags"] == []
    [record_id] = body["recorded"]
    record = by_id(cfg)[record_id]
    assert (record.chosen, record.rejected) == (SAFE_CORRECTION, SORE_THROAT_ANSWER)  # stripped
    assert (record.prompt, record.messages, record.annotator) == (SORE_THROAT, (), "ward-7")
    assert (record.source, record.completion_id, record.rationale) == ("feedback", reply.id, "mention fever")
    corrected_side = record.preferred
    served_side = "b" if corrected_side == "a" else "a"
    assert dict(record.objectives) == {"guidelines": corrected_side, "safety": "tie", "coherence": served_side}
    assert record.created.endswith("Z")


def test_a_conversations_earlier_turns_and_the_annotator_are_kept(server, api_key):
    url, cfg = server
    turns = [{"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": "Hello."},
             {"role": "assistant", "content": "Hello, how can I help?"}, {"role": "user", "content": SORE_THROAT}]
    served = chat(url, api_key, turns)
    response = post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": SAFE_CORRECTION,
                                            "annotator": "dr-okafor"})
    record = by_id(cfg)[response.json()["recorded"][0]]
    assert record.prompt == SORE_THROAT and record.annotator == "dr-okafor"
    assert [dict(turn) for turn in record.messages] == [{"role": "system", "content": "Answer briefly."}, *turns[1:3]]
    assert record.rejected == served["choices"][0]["message"]["content"]


def test_a_correction_the_guard_rejects_is_quarantined_not_recorded_as_a_pair(server, api_key):
    url, cfg = server
    served = chat(url, api_key, OVERDOSE)  # the client got the fallback
    response = post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": UNSAFE_CORRECTION})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "quarantined" and body["recorded"] == []
    assert body["correction_safety"]["action"] == "reject" and body["correction_safety"]["reason_code"] == "dosage"
    assert all("evidence" not in flag for flag in body["correction_safety"]["flags"])
    assert "not recorded as a training pair" in body["message"]
    assert all(record.chosen != UNSAFE_CORRECTION for record in by_id(cfg).values())
    [event] = [e for e in audit_events(cfg) if e["details"]["feedback_id"] == body["id"]]
    assert event["details"]["correction_flagged"] and event["verdict"]["action"] == "reject"
    assert event["details"]["quarantined"] == body["quarantined"]


def test_streamed_and_text_completions_can_get_feedback_once_complete(server, api_key):
    url, cfg = server
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": SORE_THROAT}], "temperature": 0,
            "max_tokens": 40, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert post_feedback(url, api_key, {"completion_id": events[0]["id"], "rating": "good"}).status_code == 200
    prompt = f"Patient question: {SORE_THROAT}\nClinician answer:"
    text = httpx.post(f"{url}/v1/completions", headers=headers, timeout=30,
                      json={"model": MODEL, "prompt": prompt, "temperature": 0, "max_tokens": 40}).json()
    response = post_feedback(url, api_key, {"completion_id": text["id"], "corrected_answer": SAFE_CORRECTION})
    record = by_id(cfg)[response.json()["recorded"][0]]
    assert record.prompt == prompt and record.messages == () and record.rejected == text["choices"][0]["text"]


# ----------------------------------------------------------------------------- ratings


def test_opposite_ratings_of_one_conversation_make_a_pair(server, api_key):
    url, cfg = server
    question = [{"role": "system", "content": "Ward 7."}, {"role": "user", "content": SORE_THROAT}]
    full, cut = chat(url, api_key, question), chat(url, api_key, question, max_tokens=3)  # two different answers
    full_text, cut_text = (reply["choices"][0]["message"]["content"] for reply in (full, cut))
    assert full_text != cut_text
    first = post_feedback(url, api_key, {"completion_id": cut["id"], "rating": 2, "rationale": "cut off"}).json()
    assert len(first["recorded"]) == 1 and first["recorded"][0].startswith("rating-")  # nothing to pair with yet
    second = post_feedback(url, api_key, {"completion_id": full["id"], "rating": "good", "annotator": "dr-okafor"})
    pair_id, rating_id = second.json()["recorded"]
    record = by_id(cfg)[pair_id]
    assert (record.chosen, record.rejected, record.prompt) == (full_text, cut_text, SORE_THROAT)
    assert record.annotator == "ward-7+dr-okafor" and record.completion_id == full["id"]
    assert [dict(turn) for turn in record.messages] == [question[0]]
    assert f"{cut['id']} rated 2" in record.rationale and "bad: cut off" in record.rationale
    ratings = [json.loads(line) for line in (cfg.run_dir / "feedback" / "ratings.jsonl").read_text().splitlines()]
    assert {line["id"]: line["class"] for line in ratings}[rating_id] == "good"


def test_same_answers_or_a_neutral_rating_make_no_pair(server, api_key):
    url = server[0]
    replies = [chat(url, api_key, "What helps a mild sore throat? ") for _ in range(3)]
    assert len({reply["choices"][0]["message"]["content"] for reply in replies}) == 1  # greedy: one text
    first, second, third = (reply["id"] for reply in replies)
    assert len(post_feedback(url, api_key, {"completion_id": first, "rating": "good"}).json()["recorded"]) == 1
    # Greedy decoding gave the same text: opposite ratings of it are disagreement, not a preference.
    assert len(post_feedback(url, api_key, {"completion_id": second, "rating": "bad"}).json()["recorded"]) == 1
    assert len(post_feedback(url, api_key, {"completion_id": third, "rating": 3}).json()["recorded"]) == 1


# ----------------------------------------------------------------------------- errors and the trail


def test_an_unknown_completion_is_404_and_audited(server, api_key):
    url, cfg = server
    response = post_feedback(url, api_key, {"completion_id": "chatcmpl-0123456789abcdef", "rating": "bad"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "completion_not_found" and error["param"] == "completion_id"
    assert "unknown here, or older than the 10000 most recent completions" in error["message"]
    assert audit_events(cfg)[-1]["details"]["status"] == "unknown_completion"


@pytest.mark.parametrize("body, says", [
    ({"rating": "good"}, "`completion_id`: Field required"),
    ({"completion_id": "x"}, "send a `rating` (good, bad or 1-5), a `corrected_answer`, or both"),
    ({"completion_id": "x", "rating": 7}, '`rating`: must be "good", "bad" or an integer from 1 to 5'),
    ({"completion_id": "x", "rating": True}, '`rating`: must be "good", "bad" or an integer from 1 to 5'),
    ({"completion_id": "x", "rating": 1, "objectives": {"safety": "served"}}, "they need `corrected_answer`"),
    ({"completion_id": "x", "corrected_answer": "  "}, "`corrected_answer`: must not be empty"),
    ({"completion_id": "x", "rating": 1, "annotator": "Dr Jane Doe"}, "`annotator`: must be an id"),
    ({"completion_id": "x", "score": 1}, "`score` is not supported by this server; supported fields: annotator"),
    (b"{not json", "the body is not valid JSON"),
])
def test_bad_bodies_are_400_with_one_clear_message(server, api_key, body, says):
    response = post_feedback(server[0], api_key, body)
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


def test_a_correction_equal_to_the_served_answer_is_400(server, api_key):
    served = chat(server[0], api_key, SORE_THROAT)
    response = post_feedback(server[0], api_key, {"completion_id": served["id"], "corrected_answer": SORE_THROAT_ANSWER})
    assert response.status_code == 400 and "send a `rating` instead" in response.json()["error"]["message"]


def test_feedback_needs_an_api_key(server):
    assert post_feedback(server[0], None, {"completion_id": "x", "rating": 1}).status_code == 401
    response = post_feedback(server[0], "crl-not-a-key-of-this-server", {"completion_id": "x", "rating": 1})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_parallel_feedback_appends_whole_lines(server, api_key):
    """48 corrections from 16 threads: each lands as one whole line in the preference file or, when
    its guard check failed safe under the burst (past serve.guard_timeout_seconds), in the
    quarantine file, as its response says; none is lost or torn."""
    url, cfg = server
    ids = [chat(url, api_key, SORE_THROAT)["id"] for _ in range(4)]
    preferences_before = set(by_id(cfg))
    quarantined_before = {record["id"] for record in quarantine_records(cfg)}

    def send(index: int) -> httpx.Response:
        return post_feedback(url, api_key, {"completion_id": ids[index % 4],
                                            "corrected_answer": f"{SAFE_CORRECTION} (variant {index}) " * 20})

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(send, range(48)))
    assert [r.status_code for r in responses] == [200] * 48
    bodies = [r.json() for r in responses]
    recorded = {record_id for body in bodies for record_id in body["recorded"]}
    quarantined = {record_id for body in bodies for record_id in body.get("quarantined", [])}
    assert len(recorded) + len(quarantined) == 48
    assert set(by_id(cfg)) - preferences_before == recorded  # every line whole and valid
    assert {record["id"] for record in quarantine_records(cfg)} - quarantined_before == quarantined
    assert all(body["correction_safety"]["reason_code"] == "guard_error"  # a safe correction: only a timeout
               for body in bodies if body["status"] == "quarantined")


def test_audit_chain_holds_one_feedback_event_per_request_by_key_id_hashes_only(server, api_key):
    url, cfg = server
    served = chat(url, api_key, SORE_THROAT)
    secret = "Gargle salt water, patient J. Smith."
    response = post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": secret,
                                            "rating": 5, "rationale": "prefers home care"})
    assert verify_audit_log(audit_path(cfg)).ok
    [event] = [e for e in audit_events(cfg) if e["details"]["feedback_id"] == response.json()["id"]]
    assert event["actor"] == "ward-7" and event["details"]["kinds"] == ["correction", "rating"]
    assert event["details"]["recorded"] == response.json()["recorded"]
    assert event["response_sha256"] is not None and event["details"]["served_answer_sha256"] is not None
    text = audit_path(cfg).read_text()
    assert secret not in text and "prefers home care" not in text and api_key not in text
    metrics = httpx.get(f"{url}/metrics").text
    assert 'clinical_rlhf_feedback_total{kind="correction"}' in metrics
    assert 'clinical_rlhf_serve_requests_total{endpoint="feedback",status="200"}' in metrics


# ----------------------------------------------------------------------------- configuration


def test_disabled_feedback_is_404_and_persisted_completions_survive_a_restart(make_cfg, api_key):
    with serving(make_cfg(serve={"feedback": {"enabled": False}})) as url:
        served = chat(url, api_key, SORE_THROAT)
        response = post_feedback(url, api_key, {"completion_id": served["id"], "rating": "good"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "feedback_disabled"
    cfg = make_cfg(serve={"feedback": {"persist_completions": True}})
    with serving(cfg) as url:
        served = chat(url, api_key, SORE_THROAT)
    with serving(cfg) as url:  # a new process's memory; the same run directory
        response = post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": SAFE_CORRECTION})
        assert response.status_code == 200, response.text
    assert by_id(cfg)[response.json()["recorded"][0]].rejected == SORE_THROAT_ANSWER


def test_an_unusable_feedback_path_stops_the_server_with_one_error(make_cfg, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    cfg = make_cfg(serve={"feedback": {"preferences_file": str(blocker / "preferences.jsonl")}})
    with pytest.raises(ClinicalRLHFError, match=r"feedback file or directory .*not-a-directory cannot be used"):
        serve_in_foreground(create_app(cfg, environ={}))


# ----------------------------------------------------------------------------- the stores


def served(index: int, prompt: str = "q", answer: str = "a") -> ServedCompletion:
    return ServedCompletion(f"cmpl-{index}", "completion", MODEL, 0, (), prompt, answer, "allow", None, "ward-7")


def test_store_drops_the_least_recently_used_by_count_and_by_characters():
    store = CompletionStore(capacity=3, max_chars=1000)
    for index in range(3):
        store.add(served(index))
    assert store.get("cmpl-0") is not None  # used: now the most recent
    store.add(served(3))
    assert store.get("cmpl-1") is None and store.get("cmpl-0") is not None and len(store) == 3
    store.add(served(4, answer="x" * 998))  # 999 characters: only it fits
    assert len(store) == 1 and store.get("cmpl-4") is not None


def test_persisted_store_rotates_and_reloads_the_window(tmp_path):
    path = tmp_path / "served.jsonl"
    store = CompletionStore(capacity=3, max_chars=10_000, path=path)
    store.open()
    for index in range(8):
        store.add(served(index))
    store.close()
    with path.open("a") as handle:
        handle.write('{"id": "cmpl-torn", "ki')  # a crash mid-write
    assert len(path.read_text().splitlines()) + len(path.with_name("served.jsonl.1").read_text().splitlines()) <= 7
    assert _window(path, capacity=3) == [5, 6, 7]
    again = CompletionStore(capacity=5, max_chars=10_000, path=path)
    again.open()  # both files: 3, 4, 5 and 6, 7 (the torn line is skipped)
    assert [i for i in range(8) if again.get(f"cmpl-{i}") is not None] == [3, 4, 5, 6, 7]
    again.add(served(8))
    again.close()
    assert path.read_text().splitlines()[-1].startswith('{"id": "cmpl-8"')  # not glued to the torn line
    assert _window(path, capacity=5) == [4, 5, 6, 7, 8]


def _window(path: Path, capacity: int) -> list[int]:
    store = CompletionStore(capacity=capacity, max_chars=10_000, path=path)
    store.open()
    store.close()
    return [i for i in range(10) if store.get(f"cmpl-{i}") is not None]


def test_rating_index_pairs_opposite_classes_of_one_conversation_only():
    index = RatingIndex(capacity=100)

    def rated(completion: str, rating, answer: str, conversation: str = "c1") -> Rated:
        return Rated(f"rating-{completion}", completion, conversation, rating, "ward-7", answer)

    for item in (rated("1", "bad", "A"), rated("2", 3, "B"), rated("3", 5, "C"), rated("4", 1, "D", "c2"),
                 rated("5", 2, "E"), rated("6", "bad", "E")):
        index.add(item)
    assert [r.completion_id for r in index.opposite(rated("7", "good", "F"))] == ["6", "1"]  # E once, newest first
    assert [r.completion_id for r in index.opposite(rated("8", 1, "G"))] == ["3"]
    assert index.opposite(rated("9", 3, "H")) == []
    index.add(rated("3", "bad", "C"))  # re-rated: its latest rating counts
    assert index.opposite(rated("8", 1, "G")) == []
