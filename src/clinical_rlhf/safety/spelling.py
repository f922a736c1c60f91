"""Patient spelling and shorthand read back to the words the guard's lexicons know.

Two steps, run by the normaliser on each text's words before determiners are dropped:

1. Shorthand, slang and sound-alike spellings (`data/knowledge/language.yaml`: the sets
   `patient_abbreviations`, `prescription_abbreviations`, `phonetic_spellings`) are replaced by
   the phrase they stand for ("SOB" -> "short of breath", "the runs" -> "diarrhoea"). The same
   replacements are applied to knowledge-base phrases (`Normaliser.phrase_tokens`), so a trigger
   that contains a slang word still meets the text. "od" after a dose ("20mg OD") is once daily
   (`abbreviations_after_dose`), elsewhere an overdose.
2. One-letter slips ("chest pian", "ibuprofin", "numbnes") are read as the lexicon word one edit
   away (Damerau: a swap of two neighbouring letters is one edit), for words the guard does not
   know and that are not English words (`english_words`: "breast" never becomes "breath", "pills"
   never "pulls"), nor plurals and possessives of known words. A slip and its word of five letters
   or more may differ by any one edit; a four-letter one only by a swap ("pian" -> "pain"; "stat"
   is not "start"); every correction keeps the first letter, and a slip one edit from two lexicon
   words is left alone unless exactly one of them is a swap.

The corrections come from a symmetric-delete index (Garbe, SymSpell, 2012) built once over the
vocabulary: a word and a slip one edit apart share a one-letter deletion, so a token is looked up
with its own deletions (one dictionary lookup each) and the candidates are checked with the exact
distance. Only tokens that are neither lexicon nor English words are looked up, and their answers
are remembered, so ordinary text costs one set difference (in C) per piece.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json
import logging
from collections.abc import Collection, Iterable
from typing import NamedTuple

from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.memo import make_room
from clinical_rlhf.safety.phrases import PhraseIndex, longest_non_overlapping

logger = logging.getLogger(__name__)

MIN_FUZZY_LENGTH = 4
"""Shorter tokens are never corrected: too many real words and abbreviations are one edit apart."""
MIN_ANY_EDIT_LENGTH = 5
"""A slip and its word both this long or longer may differ by any one edit; a four-letter slip or
word only by a swap ("pian" -> "pain"; "stat" is not "start")."""
CORRECTION_CACHE_SIZE = 16384
"""Unknown tokens whose correction (or lack of one) is remembered."""
_DETERMINERS = lexicon.DETERMINERS
_BREAKS = frozenset("|,")  # the normaliser's sentence and clause marks: never a slip
ENGLISH_WORDS_PACKAGE = "spellchecker"
"""pyspellchecker (pinned in pyproject.toml) ships a curated English word-frequency list."""


class Respelling(NamedTuple):
    """Tokens [first, last) of a reading stand for `written` as the text has it."""

    first: int
    last: int
    written: str


@functools.lru_cache(maxsize=1)
def english_frequencies() -> dict[str, int]:
    """pyspellchecker's English word-frequency list (~160,000 words from subtitles and Wikipedia,
    misspellings filtered out by its authors): word -> how often it occurs. Empty, with a warning,
    when the package is missing: fuzzy matching is then switched off rather than let loose on real
    words."""
    try:
        resource = importlib.resources.files(ENGLISH_WORDS_PACKAGE) / "resources" / "en.json.gz"
        return json.loads(gzip.decompress(resource.read_bytes()))
    except (ModuleNotFoundError, OSError, ValueError) as exc:
        logger.warning("the English word list (package pyspellchecker) cannot be read (%s): misspellings "
                       "will not be corrected; install it with `pip install pyspellchecker==0.9.1` "
                       "or `make install`", exc)
        return {}


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The English words that fuzzy matching never changes (`english_frequencies`), with their
    apostrophes dropped too, as the normaliser drops them ("there's" is also "theres")."""
    words = english_frequencies()
    return frozenset(words).union(word.replace("'", "") for word in words if "'" in word)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def one_edit(written: str, word: str) -> str | None:
    """The kind of the one edit between `written` and `word` ("swap", "substitution",
    "insertion", "deletion"), or None when they are equal or further apart."""
    size, other = len(written), len(word)
    if size == other:
        differ = [i for i in range(size) if written[i] != word[i]]
        if len(differ) == 1:
            return "substitution"
        if len(differ) == 2 and differ[1] == differ[0] + 1 and written[differ[0]] == word[differ[1]] \
                and written[differ[1]] == word[differ[0]]:
            return "swap"
        return None
    if abs(size - other) != 1:
        return None
    shorter, longer = (written, word) if size < other else (word, written)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    if shorter[i:] != longer[i + 1:]:
        return None
    return "deletion" if size < other else "insertion"


class FuzzyIndex:
    """Lexicon words one edit away from a token, by symmetric deletion."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = frozenset(w for w in words if w.isalpha() and w.isascii() and len(w) >= MIN_FUZZY_LENGTH)
        self._by_deletion: dict[str, list[str]] = {}
        for word in sorted(self.words):
            for deleted in _deletions(word):
                self._by_deletion.setdefault(deleted, []).append(word)
        self.longest = max(map(len, self.words), default=0)

    def correct(self, token: str) -> str | None:
        """The one lexicon word `token` is a slip of (see the module docstring), or None."""
        if len(token) < MIN_FUZZY_LENGTH or len(token) > self.longest + 1:
            return None
        candidates = set(self._by_deletion.get(token, ()))  # a letter left out
        for deleted in _deletions(token):
            if deleted in self.words:  # a letter too many
                candidates.add(deleted)
            candidates.update(self._by_deletion.get(deleted, ()))  # a letter changed, or two swapped
        found: dict[str, str] = {}
        for word in candidates:
            if word[0] != token[0]:
                continue
            kind = one_edit(token, word)
            if kind == "swap" or (kind is not None and min(len(word), len(token)) >= MIN_ANY_EDIT_LENGTH):
                found[word] = kind
        if len(found) == 1:
            return next(iter(found))
        swaps = [word for word, kind in found.items() if kind == "swap"]
        return swaps[0] if len(swaps) == 1 else None


class Respeller:
    """Reads a text's words as the lexicons write them (module docstring)."""

    def __init__(self, vocabulary: Collection[str]) -> None:
        language = lexicon.LANGUAGE
        general = {tuple(written.split()): tuple(meant.split()) for written, meant in (
            *language.mappings("patient_abbreviations"), *language.mappings("prescription_abbreviations"),
            *language.mappings("phonetic_spellings"))}
        self.after_dose = {tuple(written.split()): tuple(meant.split())
                           for written, meant in language.mappings("abbreviations_after_dose")}
        self.replacements: PhraseIndex[tuple[str, ...]] = PhraseIndex()
        for written, meant in general.items():
            self.replacements.add(written, meant)
        for written in self.after_dose.keys() - general.keys():
            self.replacements.add(written, written)  # unchanged unless it follows a dose
        self.dose_units = language.words("dose_units")
        # Each phrase's rarest word in English ("n and v": "n", not "and"): a text holding none of
        # them has no replacement, which one set test (in C) settles for most texts.
        frequency = english_frequencies()
        self._gate = frozenset(min(phrase, key=lambda word: (frequency.get(word, 0), -len(word)))
                               for phrase, _ in self.replacements.phrases)
        self.meant_words = {word for meant in (*general.values(), *self.after_dose.values()) for word in meant}
        self._vocabulary = frozenset(vocabulary) | self.meant_words
        self._written_words = frozenset(word for phrase, _ in self.replacements.phrases for word in phrase)
        """Words of shorthand and sound-alike spellings: read by the mappings, never corrected
        ("squits" alone is not "suits")."""
        self._fuzzy: FuzzyIndex | None = None
        self._known: frozenset[str] | None = None
        self._corrections: dict[str, str | None] = {}
        if vocabulary:
            self._build()  # ~0.1 s, at construction rather than inside the first check

    def _build(self) -> None:
        """The words that are never slips, and the index of those slips are corrected to."""
        self._known = english_words() | self._vocabulary | self._written_words | _BREAKS
        self._fuzzy = FuzzyIndex(self._vocabulary) if english_words() else FuzzyIndex(())

    def read(self, words: list[str], fuzzy: bool = True) -> tuple[tuple[str, ...], tuple[Respelling, ...]]:
        """(tokens, respellings): `words` with replacements and corrections made and determiners
        dropped, and where each changed stretch of tokens was written otherwise. Without a change
        the tokens are `words` less determiners, built by one comprehension (the common case)."""
        present = set(words)
        hits = self.replacements.find(tuple(words), token_set=present) \
            if not self._gate.isdisjoint(present) else []
        corrections = self._corrections_for(present) if fuzzy else None
        if not hits and not corrections:
            return tuple([word for word in words if word not in _DETERMINERS]), ()
        return self._respelled(words, longest_non_overlapping(hits, ordered=True), corrections or {})

    def _respelled(self, words: list[str], hits, corrections: dict[str, str]):
        determiners = _DETERMINERS
        tokens: list[str] = []
        respellings: list[Respelling] = []
        hit_at = {start: (end, meant) for start, end, meant in hits}
        position = 0
        while position < len(words):
            found = hit_at.get(position)
            if found is not None:
                end, meant = found
                written = tuple(words[position:end])
                if written in self.after_dose and _after_a_dose(tokens, self.dose_units):
                    meant = self.after_dose[written]
                if meant != written:
                    kept = [word for word in meant if word not in determiners]
                    respellings.append(Respelling(len(tokens), len(tokens) + len(kept), " ".join(written)))
                    tokens.extend(kept)
                    position = end
                    continue
            word = words[position]
            corrected = corrections.get(word)
            if corrected is not None:
                respellings.append(Respelling(len(tokens), len(tokens) + 1, word))
                tokens.append(corrected)
            elif word not in determiners:
                tokens.append(word)
            position += 1
        return tuple(tokens), tuple(respellings)

    def _corrections_for(self, present: set[str]) -> dict[str, str]:
        if self._known is None:
            self._build()
        known = self._known
        unknown = present.difference(known)  # in C: ~50 ns a distinct word
        if not unknown:
            return {}
        found: dict[str, str] = {}
        cache = self._corrections
        for token in unknown:
            if len(token) < MIN_FUZZY_LENGTH or not token.isalpha() or (token[-1] == "s" and token[:-1] in known):
                continue  # a plural or possessive of a known word ("clopidogrels", "familys")
            if token in cache:
                corrected = cache[token]
            else:
                corrected = self._fuzzy.correct(token)
                make_room(cache, CORRECTION_CACHE_SIZE)
                cache[token] = corrected
            if corrected is not None:
                found[token] = corrected
        return found


def _after_a_dose(tokens: list[str], dose_units: frozenset[str]) -> bool:
    """The token before is an amount ("20mg", "2") or a dose word ("tablets", "ml")."""
    return bool(tokens) and (tokens[-1][:1].isdigit() or tokens[-1] in dose_units)
