"""The secret key of a keyed (HMAC-SHA-256) audit chain: read from a key file or an environment
variable, never from the config file, which is saved with every checkpoint and logged to the
tracker. Without the key nobody can write a record that verifies, so a forger who edits the log
cannot re-hash the chain after the edit or append a record of their own."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from clinical_rlhf.errors import ConfigError

DEFAULT_KEY_ENV = "CLINICAL_RLHF_AUDIT_KEY"
MIN_KEY_BYTES = 16
"""Shorter keys can be guessed; 32 random bytes (`openssl rand -hex 32`) is the usual choice."""


def read_key_file(path: Path | str) -> bytes:
    """The key in `path` (surrounding whitespace, e.g. a trailing newline, is not part of it)."""
    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"audit key file {path} cannot be read ({exc.strerror}); create it, e.g. "
                          f"`openssl rand -hex 32 > {path}`") from None
    return _checked(key, f"audit key file {path}")


def load_audit_key(key_file: Path | None = None, key_env: str = DEFAULT_KEY_ENV,
                   environ: Mapping[str, str] | None = None) -> bytes | None:
    """`key_file` when given, else the environment variable `key_env` when set, else None (an
    unkeyed SHA-256 chain)."""
    if key_file is not None:
        return read_key_file(key_file)
    value = (os.environ if environ is None else environ).get(key_env)
    if not value:
        return None
    # surrogateescape: the variable's own bytes, even when they are not UTF-8 (no UnicodeEncodeError)
    return _checked(value.strip().encode("utf-8", "surrogateescape"), f"environment variable {key_env}")


def configured_key(audit_cfg) -> bytes | None:
    """The key a `safety.audit` config section points at (`key_file`, else `key_env`), or None."""
    return load_audit_key(audit_cfg.key_file, audit_cfg.key_env)


def _checked(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{where} holds a key of {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                          f"(e.g. `openssl rand -hex 32`)")
    return key
