"""Bounded memo dictionaries for the guard's per-piece and per-sentence stores."""

from __future__ import annotations

from itertools import islice

EVICTED_SHARE = 8
"""A full store drops its oldest 1/8: emptying a full store at once frees ~8,000 entries in one go
(~4 ms, a latency spike once per few thousand checks); dropping an eighth spreads that cost."""


def make_room(store: dict, size: int) -> None:
    """Before adding to `store`: when it holds `size` entries or more, drop the oldest eighth
    (dictionaries keep insertion order). Entries are values computed from their keys, so dropping
    one only costs computing it again; safe to call from several threads (a key another thread
    dropped first is skipped)."""
    if len(store) >= size:
        for key in list(islice(store, max(1, size // EVICTED_SHARE))):
            store.pop(key, None)
