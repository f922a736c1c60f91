"""The clinical language data: how people write about symptoms, medicines, advice and certainty.

Every phrase set that the guard, the reward's wording scorers and the question reader match lives in
`data/knowledge/language.yaml`, each with its purpose and source (the file's header gives the
schema). This module loads and validates that file once; the readers take their sets from it, so a
clinician adds a phrase by editing YAML, and no phrase list is written in code.

    language = load_language()
    language.phrases("negation_before")      # tuple of phrases, in the file's order
    language.words("stopwords")              # frozenset of single words
    language.reach("negation_before")        # 6
    language.mappings("patient_abbreviations")   # ((as written, as the lexicons write it), ...)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.yaml_file import parse_yaml

LANGUAGE_FILE = "language.yaml"
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "data" / "knowledge"
_ENTRIES = ("phrases", "words", "mappings")
_KEYS = frozenset({"purpose", "source", "reach", *_ENTRIES})


@dataclass(frozen=True, slots=True)
class PhraseSet:
    name: str
    purpose: str
    source: str
    entries: tuple[Any, ...]
    """Phrases or words (str), or (as written, read as) mappings."""
    reach: int | None = None


@dataclass(frozen=True)
class Language:
    sets: Mapping[str, PhraseSet]
    number_words: Mapping[str, float]
    age_words: Mapping[str, float]
    """Words that state an age -> the age in years they stand for."""
    path: Path

    def _set(self, name: str) -> PhraseSet:
        found = self.sets.get(name)
        if found is None:
            raise KeyError(f"{self.path} has no phrase set {name!r}; known sets: {', '.join(sorted(self.sets))}")
        return found

    def phrases(self, name: str) -> tuple[str, ...]:
        return self._set(name).entries

    def words(self, name: str) -> frozenset[str]:
        return frozenset(self._set(name).entries)

    def mappings(self, name: str) -> tuple[tuple[str, str], ...]:
        return self._set(name).entries

    def reach(self, name: str) -> int:
        reach = self._set(name).reach
        if reach is None:
            raise KeyError(f"phrase set {name!r} in {self.path} states no reach")
        return reach


@functools.lru_cache(maxsize=8)
def load_language(directory: Path | None = None) -> Language:
    """The language file of `directory` (the shipped knowledge directory by default; a directory
    without one falls back to the shipped file), validated; loaded once per directory."""
    path = Path(directory or DEFAULT_DIRECTORY) / LANGUAGE_FILE
    if not path.is_file():
        path = DEFAULT_DIRECTORY / LANGUAGE_FILE
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the language file {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("sets"), dict):
        raise ConfigError(f"{path}: expected a mapping with a `sets` mapping (see the file's header)")
    sets = {name: _phrase_set(path, name, body) for name, body in raw["sets"].items()}
    tables = {}
    for key in ("number_words", "age_words"):
        table = raw.get(key, {})
        if not isinstance(table, dict) or not all(isinstance(v, (int, float)) for v in table.values()):
            raise ConfigError(f"{path}: `{key}` must map words to numbers")
        tables[key] = {str(word): value for word, value in table.items()}
    return Language(sets=sets, path=path, **tables)


def _phrase_set(path: Path, name: str, body: Any) -> PhraseSet:
    where = f"{path}: set {name!r}"
    if not isinstance(body, dict):
        raise ConfigError(f"{where} must be a mapping with purpose, source and phrases, words or mappings")
    unknown = set(body) - _KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    for key in ("purpose", "source"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise ConfigError(f"{where} needs a `{key}` (every set says what it is for and where it comes from)")
    present = [key for key in _ENTRIES if key in body]
    if len(present) != 1:
        raise ConfigError(f"{where} needs exactly one of phrases, words or mappings (has {present or 'none'})")
    kind, entries = present[0], body[present[0]]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: `{kind}` must be a non-empty list")
    if kind == "mappings":
        if not all(isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) and x.strip() for x in e)
                   for e in entries):
            raise ConfigError(f"{where}: each mapping is [as written, as the lexicons write it], two phrases")
        entries = [(written.strip(), meant.strip()) for written, meant in entries]
    else:
        if not all(isinstance(e, (str, int)) and str(e).strip() for e in entries):
            raise ConfigError(f"{where}: every entry of `{kind}` must be a non-empty string")
        entries = [str(e) for e in entries]
        if kind == "words" and any(" " in e for e in entries):
            raise ConfigError(f"{where}: `words` holds single words; put phrases under `phrases`")
    reach = body.get("reach")
    if reach is not None and (not isinstance(reach, int) or reach < 1):
        raise ConfigError(f"{where}: `reach` must be a positive number of words")
    return PhraseSet(name=name, purpose=body["purpose"].strip(), source=body["source"].strip(),
                     entries=tuple(entries), reach=reach)
