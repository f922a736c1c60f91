"""API keys (hashed, from config and environment), the rate limiter, and serve config validation."""

from __future__ import annotations

import hashlib

import pytest

from clinical_rlhf.config import config_from_mapping
from clinical_rlhf.errors import ConfigError
from clinical_rlhf.serve import create_app, hash_key, new_api_key
from clinical_rlhf.serve.auth import KeyStore, RateLimiter
from clinical_rlhf.serve.gate import SafetyGate, reason_code
from clinical_rlhf.safety import SafetyGuard

from .scripted import OVERDOSE, OVERDOSE_ANSWER


def store(keys=(), env: str = "") -> KeyStore:
    cfg = config_from_mapping({"serve": {"api_keys": list(keys)}})
    return KeyStore.from_config(cfg.serve, {"CLINICAL_RLHF_API_KEYS": env} if env else {})


def test_keys_from_config_and_environment_authenticate_to_their_id():
    config_key, env_key = new_api_key(), new_api_key()
    keys = store([{"id": "ward-7", "sha256": hash_key(config_key)}], env=f"pharmacy:{env_key}")
    assert keys.authenticate(config_key).id == "ward-7"
    assert keys.authenticate(env_key).id == "pharmacy"
    assert keys.authenticate(config_key[:-1]) is None and keys.authenticate("") is None
    assert all(len(key.digest) == 32 for key in keys.keys)  # only digests are held
    assert hash_key(env_key) == hashlib.sha256(env_key.encode()).hexdigest()


@pytest.mark.parametrize("env, says", [
    ("ward-7", "not of the form id:key"),
    ("ward-7:short", "shorter than 24 characters"),
    ("", "no API keys: add one to serve.api_keys or $CLINICAL_RLHF_API_KEYS"),
])
def test_bad_or_missing_keys_are_one_clear_error(env, says):
    with pytest.raises(ConfigError, match=says.replace("$", r"\$")):
        store(env=env)


def test_duplicate_key_ids_are_rejected():
    key = new_api_key()
    with pytest.raises(ConfigError, match="`ward-7` is given twice"):
        store([{"id": "ward-7", "sha256": hash_key(key)}], env=f"ward-7:{new_api_key()}")


def test_config_stores_hashes_not_keys():
    with pytest.raises(ConfigError, match=r"serve.api_keys.0.sha256"):
        config_from_mapping({"serve": {"api_keys": [{"id": "ward-7", "sha256": new_api_key()}]}})


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    keys = store([{"id": "a", "sha256": hash_key(new_api_key())}, {"id": "b", "sha256": hash_key(new_api_key())}])
    limiter = RateLimiter(requests_per_minute=60, burst=2, clock=lambda: now[0])
    a, b = keys.keys
    assert [limiter.acquire(a) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiter.acquire(b) == 0.0  # buckets are per key
    now[0] = 1.0
    assert limiter.acquire(a) == 0.0 and limiter.acquire(a) == pytest.approx(1.0)
    assert RateLimiter(None, 1).acquire(a) == 0.0  # limit off


def test_remote_backend_needs_a_base_url():
    with pytest.raises(ConfigError, match="needs serve.remote.base_url"):
        config_from_mapping({"serve": {"backend": "openai_compatible"}})


def test_serving_refuses_to_run_without_an_audit_log(make_cfg):
    cfg = make_cfg(safety={"audit": {"enabled": False}})
    with pytest.raises(ConfigError, match="set safety.audit.enabled: true"):
        create_app(cfg, environ={})


def test_a_fallback_message_the_guard_rejects_is_refused():
    with pytest.raises(ConfigError, match="serve.fallback_message must be a non-empty text the safety guard allows"):
        SafetyGate(SafetyGuard(), fallback_message=OVERDOSE_ANSWER, escalation_notice="See a clinician.")


def test_reason_codes_come_from_the_deciding_flag():
    guard = SafetyGuard()
    assert reason_code(guard.check(OVERDOSE, OVERDOSE_ANSWER)) == "dosage"
    assert reason_code(guard.check("I have crushing chest pain.", "Drink some water.")) == "red_flag_missing_advice"
    assert reason_code(guard.check("What helps a cold?", "Rest and drink fluids.")) is None
