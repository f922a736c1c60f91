"""Text normalisation and phrase patterns shared by everything that matches knowledge-base
phrases: guideline triggers and advice, the reward's lexicons, the corpus checks."""

from __future__ import annotations

import re
from collections.abc import Iterable

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                         "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_SPACES = re.compile(r"\s+")
_POSSESSIVES = re.compile(r"\b(?:his|her|their|your|our)\b")


def normalize_text(text: str) -> str:
    """Lower-case, straighten typographic quotes and dashes, collapse whitespace.

    Every phrase and every text is normalised the same way, so offsets found in the
    normalised text index the normalised text (callers that need original offsets keep both)."""
    return _SPACES.sub(" ", text.translate(_QUOTES).lower()).strip()


def canonical_prompt(text: str) -> str:
    """Normalised text with possessives folded to "my" and apostrophes dropped ("can't" -> "cant"),
    the form triggers are written in: the guideline file's own and those derived from the red
    flags (written as the guard reads them, apostrophes dropped)."""
    return _POSSESSIVES.sub("my", normalize_text(text).replace("'", ""))


def phrase_regex(phrases: Iterable[str]) -> str:
    """One word-bounded pattern matching any of `phrases` (normalised text), `*` = any word ending.

    Built as a character trie, so matching costs one walk down the trie per text position instead
    of one attempt per phrase (Python's `re` does not factor alternations). At each node the
    longer continuations are tried first, so a match is the longest phrase starting there.
    Naive equivalent::

        "(?<!\\w)(?:" + "|".join(re.escape(p) + "(?!\\w)" for p in sorted(phrases, key=len,
        reverse=True)) + ")"        (with "\\w*" before the boundary for a phrase ending in *)
    """
    trie: dict = {}
    for phrase in {normalize_text(p) for p in phrases}:
        star = phrase.endswith("*")
        node = trie
        for char in phrase[:-1] if star else phrase:
            node = node.setdefault(char, {})
        node["*" if star else ""] = {}
    return r"(?<!\w)" + _trie_regex(trie) if trie else r"(?!x)x"


def _trie_regex(node: dict) -> str:
    branches = [re.escape(char) + _trie_regex(child) for char, child in sorted(node.items())
                if char not in ("", "*")]
    if "*" in node:
        branches.append(r"\w*(?!\w)")
    if "" in node:
        branches.append(r"(?!\w)")
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
