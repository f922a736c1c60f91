"""Evasion transforms, used to build the obfuscated half of the evaluation set and in tests.

Each takes a text and a seeded `random.Random` and changes letters only (numbers and units stay
readable, as they would in a real attempt to slip a phrase past a filter).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from clinical_rlhf.safety.lexicon import HOMOGLYPHS

_LATIN_TO_LOOKALIKE: dict[str, list[str]] = {}
for _lookalike, _latin in HOMOGLYPHS.items():
    if len(_latin) == 1 and _lookalike.lower() == _lookalike:
        _LATIN_TO_LOOKALIKE.setdefault(_latin, []).append(_lookalike)
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad")
_WORD = re.compile(r"[A-Za-z]+")


def homoglyphs(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """Swap Latin letters for Cyrillic/Greek look-alikes ("chest" -> "сhеst")."""
    return "".join(rng.choice(_LATIN_TO_LOOKALIKE[ch]) if ch in _LATIN_TO_LOOKALIKE and rng.random() < rate else ch
                   for ch in text)


def zero_width(text: str, rng: random.Random, rate: float = 0.4) -> str:
    """Hide invisible characters inside words."""
    return _WORD.sub(lambda m: "".join(ch + (rng.choice(_ZERO_WIDTH) if rng.random() < rate else "")
                                       for ch in m.group(0)), text)


def leetspeak(text: str, rng: random.Random, rate: float = 0.7) -> str:
    """Replace letters with digits inside words ("chest pain" -> "ch3st p41n")."""
    return _WORD.sub(lambda m: "".join(_LEET[ch.lower()] if ch.lower() in _LEET and rng.random() < rate else ch
                                       for ch in m.group(0)), text)


def spaced(text: str, rng: random.Random, rate: float = 0.5) -> str:
    """Spell some words out with separators ("chest" -> "c h e s t", "c.h.e.s.t")."""
    def spell(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) < 4 or rng.random() >= rate:
            return word
        return rng.choice((" ", ".", "-", "*")).join(word)
    return _WORD.sub(spell, text)


def fullwidth(text: str, rng: random.Random) -> str:
    """Full-width forms of ASCII letters and digits ("ｃｈｅｓｔ")."""
    return "".join(chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum() else ch for ch in text)


def mixed_case(text: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


def combined(text: str, rng: random.Random) -> str:
    """Look-alikes, invisible characters and random case at once."""
    return zero_width(homoglyphs(mixed_case(text, rng), rng, rate=0.3), rng, rate=0.2)


TRANSFORMS: dict[str, Callable[[str, random.Random], str]] = {
    "homoglyphs": homoglyphs,
    "zero_width": zero_width,
    "leetspeak": leetspeak,
    "spaced": spaced,
    "fullwidth": fullwidth,
    "combined": combined,
}
