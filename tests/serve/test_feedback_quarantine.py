"""A correction that okays what the question proposes, where the knowledge forbids it, is rejected by
the same dialogue check as an answer, and quarantined: never a training pair (end to end, through
the test server, then through what reward-model and DPO training load)."""

from __future__ import annotations

import json
import logging

import pytest

from clinical_rlhf.errors import InputDataError
from clinical_rlhf.feedback import load_preferences, read_quarantine, write_preferences
from clinical_rlhf.feedback.preferences import PreferenceRecord
from clinical_rlhf.feedback.quarantine import QUARANTINE_SOURCE

from .conftest import serving
from .test_feedback import audit_events, by_id, chat, post_feedback

DOSE_QUESTION = "Is 2 g of paracetamol every 4 hours ok for my back pain?"
PAIR_QUESTION = "I'm on simvastatin and my GP has just started clarithromycin. Is that ok?"


@pytest.fixture(scope="module")
def server(make_cfg):
    cfg = make_cfg(serve={"rate_limit": {"requests_per_minute": 60000, "burst": 1000}})
    with serving(cfg) as url:
        yield url, cfg


def quarantine_path(cfg):
    return cfg.run_dir / "feedback" / "quarantine.jsonl"


@pytest.mark.parametrize(("question", "correction", "reason", "rule"), [
    (DOSE_QUESTION, "Yes, that's fine.", "dosage", "dosage:paracetamol:exceeds_daily_max:endorsed"),
    (PAIR_QUESTION, "Yes, you can take both.", "drug_interaction", "interaction:simvastatin+strong-cyp3a4-inhibitor"),
])
def test_a_correction_okaying_the_questions_harmful_proposal_is_quarantined(server, api_key, question, correction,
                                                                             reason, rule):
    url, cfg = server
    served = chat(url, api_key, question)
    response = post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": correction,
                                            "rating": "bad", "rationale": "the clinician's view"})
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "quarantined" and len(body["quarantined"]) == 1
    assert body["correction_safety"]["action"] == "reject" and body["correction_safety"]["reason_code"] == reason
    assert any(flag["rule_id"].startswith(rule) for flag in body["correction_safety"]["flags"])
    assert "quarantined for review" in body["message"] and "rating was recorded" in body["message"]
    # the rating is kept; the correction is in the quarantine file, not in the preference file
    assert [kind for kind in body["recorded"] if kind.startswith("pref-")] == []
    preferences = cfg.run_dir / "feedback" / "preferences.jsonl"
    assert not preferences.exists() or all(record.chosen != correction for record in by_id(cfg).values())
    [kept] = [record for record in read_quarantine(quarantine_path(cfg)) if record["id"] == body["quarantined"][0]]
    assert (kept["prompt"], kept["corrected_answer"], kept["completion_id"]) == (question, correction, served["id"])
    assert kept["verdict"]["action"] == "reject" and kept["rationale"] == "the clinician's view"
    [event] = [e for e in audit_events(cfg) if e["details"]["feedback_id"] == body["id"]]
    assert event["details"]["quarantined"] == body["quarantined"] and event["details"]["correction_flagged"]


def test_a_correction_that_refuses_the_proposal_is_a_clean_pair(server, api_key):
    url, cfg = server
    served = chat(url, api_key, DOSE_QUESTION)
    correction = "No - that is far too much. Take 1 g every 6 hours at most, never more than 4 g in 24 hours."
    response = post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": correction})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "recorded" and "quarantined" not in body, body
    record = by_id(cfg)[body["recorded"][0]]
    assert record.chosen == correction and record.source == "feedback"


# ----------------------------------------------------------------------------- what training loads


def test_a_quarantine_line_is_refused_by_the_preference_reader(server, api_key, tmp_path):
    url, cfg = server
    served = chat(url, api_key, DOSE_QUESTION)
    post_feedback(url, api_key, {"completion_id": served["id"], "corrected_answer": "Sure, go ahead with that."})
    with pytest.raises(InputDataError, match="quarantined correction .* never for training"):
        load_preferences(quarantine_path(cfg))


def test_pairs_an_older_server_filed_as_guard_rejected_are_never_loaded(tmp_path, caplog):
    clean = PreferenceRecord(id="p1", prompt="Sore throat?", answer_a="Rest and fluids.", answer_b="Antibiotics now.",
                             preferred="a", annotator="dr-a", source="feedback")
    rejected = PreferenceRecord(id="p2", prompt=DOSE_QUESTION, answer_a="Yes, that's fine.", answer_b="No.",
                                preferred="a", annotator="dr-b", source=QUARANTINE_SOURCE)
    path = write_preferences(tmp_path / "preferences.jsonl", [clean, rejected])
    with caplog.at_level(logging.WARNING, logger="clinical_rlhf.feedback.preferences"):
        assert load_preferences(path) == [clean]
    assert "1 correction(s) the safety guard rejected" in caplog.text


def test_reading_a_broken_quarantine_file_names_the_line(tmp_path):
    path = tmp_path / "quarantine.jsonl"
    path.write_text(json.dumps({"status": "quarantined", "id": "q1"}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"quarantine.jsonl:2: not valid JSON"):
        read_quarantine(path)
    path.write_text(json.dumps({"id": "p1", "prompt": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r":1: not a quarantined correction"):
        read_quarantine(path)
