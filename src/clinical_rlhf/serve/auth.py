"""API keys (hashed, compared in constant time) and a per-key token-bucket rate limit.

Keys are random 256-bit tokens (`new_api_key`), so a plain SHA-256 of the key is a sufficient
verifier: with that much entropy there is nothing for a slow password hash to protect. Only the
digests are held in memory; the key's id (not secret) is what the audit log and logs show.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from clinical_rlhf.config import ServeConfig
from clinical_rlhf.errors import ConfigError

KEY_PREFIX = "crl-"
MIN_KEY_LENGTH = 24
"""Shortest key accepted from the environment: below ~128 bits a key could be guessed."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    """A fresh key: `crl-` + 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    digest: bytes
    requests_per_minute: int | None


def _from_environment(variable: str, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    raw = environ.get(variable, "").strip()
    if not raw:
        return []
    pairs = []
    for number, item in enumerate(raw.split(","), start=1):
        key_id, sep, key = item.strip().partition(":")
        if not sep or not key_id or not key:
            raise ConfigError(f"${variable}: entry {number} is not of the form id:key (entries are "
                              f"separated by commas, e.g. ward-7:crl-...)")
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(f"${variable}: the key of `{key_id}` is shorter than {MIN_KEY_LENGTH} characters; "
                              f"create a strong one with `clinical-rlhf serve-key --id {key_id}`")
        pairs.append((key_id, key))
    return pairs


class KeyStore:
    """Every configured key by digest. `authenticate(key)` -> the key's `ApiKey`, or None."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @classmethod
    def from_config(cls, serve: ServeConfig, environ: Mapping[str, str] | None = None) -> KeyStore:
        environ = os.environ if environ is None else environ
        keys = [ApiKey(k.id, bytes.fromhex(k.sha256), k.requests_per_minute) for k in serve.api_keys]
        keys += [ApiKey(key_id, bytes.fromhex(hash_key(key)), None)
                 for key_id, key in _from_environment(serve.api_keys_env, environ)]
        ids = [key.id for key in keys]
        duplicate = next((key_id for key_id in ids if ids.count(key_id) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"API key id `{duplicate}` is given twice (serve.api_keys and "
                              f"${serve.api_keys_env}); give each client its own id")
        if not keys:
            raise ConfigError(f"no API keys: add one to serve.api_keys or ${serve.api_keys_env}; "
                              f"`clinical-rlhf serve-key --id NAME` creates one")
        return cls(keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        """Compares the presented key's digest with every stored digest, all of them every time,
        with `hmac.compare_digest`, so timing reveals neither a prefix nor which key matched."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


class RateLimiter:
    """Token bucket per key id: `burst` requests at once, refilled at `requests_per_minute`."""

    def __init__(self, requests_per_minute: int | None, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.default_rate = requests_per_minute
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill time)

    def acquire(self, key: ApiKey) -> float:
        """0.0 when the request may go ahead (a token is taken), else seconds until it may."""
        rate = key.requests_per_minute or self.default_rate
        if rate is None:
            return 0.0
        per_second = rate / 60.0
        now = self.clock()
        tokens, last = self._buckets.get(key.id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * per_second)
        if tokens >= 1.0:
            self._buckets[key.id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key.id] = (tokens, now)
        return (1.0 - tokens) / per_second


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
