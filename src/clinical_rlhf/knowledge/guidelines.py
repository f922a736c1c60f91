"""Guideline statements: what an answer to a common presentation should advise and must not.

The statements live in `data/knowledge/guidelines.yaml` (one file, each statement with its
published source); this module loads, validates and matches them. Nothing clinical is written
here: the guideline-adherence reward, the safety reward and the corpus generator all read the
same file.

File schema (YAML)::

    phrase_sets:                  # named, reusable wordings (how an answer says something)
      emergency_now: [call 999, call 911, ...]
    guidelines:
      - id: chest_pain_acs        # unique, snake_case
        presentation: Acute chest pain that may be cardiac
        triggers: [chest pain, ...]        # phrases matched in the prompt (any one matches);
                                           # "a + b" matches when a and b both occur
        context: [...]            # optional: at least one must ALSO occur in the prompt
        urgency: emergency        # emergency | urgent | routine | self_care
        supersedes: [...]         # optional: guideline ids dropped when this one matches
        must_advise:              # advice points the answer must contain
          - id: call_emergency
            description: Call emergency services now
            phrases: [...]        # ways an answer expresses it
            phrase_sets: [emergency_now]   # optional: phrase sets merged into `phrases`
        must_not: [...]           # advice points the answer must not contain (same shape)
        source: NICE CG95 ...     # the published source of the statement

Phrase syntax: matched case-insensitively on word boundaries after whitespace is collapsed
and typographic quotes are straightened; a trailing `*` matches any word ending
(`antibiotic*` matches "antibiotics"). Plain text only, no regular expressions. In triggers and
context, possessives are interchangeable: "pain in my chest" also matches "pain in his chest".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clinical_rlhf.errors import ConfigError

Urgency = Literal["emergency", "urgent", "routine", "self_care"]
URGENCIES: tuple[str, ...] = ("emergency", "urgent", "routine", "self_care")
GUIDELINES_FILE = "guidelines.yaml"
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "data" / "knowledge"

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_PHRASE_RE = re.compile(r"^[\w][\w '\-/.,%+&]*\*?$")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                         "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_SPACES = re.compile(r"\s+")
_POSSESSIVES = re.compile(r"\b(?:his|her|their|your|our)\b")
_AND = " + "


def normalize_text(text: str) -> str:
    """Lower-case, straighten typographic quotes and dashes, collapse whitespace.

    Every phrase and every text is normalised the same way, so offsets found in the
    normalised text index the normalised text (callers that need original offsets keep both)."""
    return _SPACES.sub(" ", text.translate(_QUOTES).lower()).strip()


def canonical_prompt(text: str) -> str:
    """Normalised text with possessives folded to "my", the form triggers are written in."""
    return _POSSESSIVES.sub("my", normalize_text(text))


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


@dataclass(frozen=True, slots=True)
class AdvicePoint:
    """One piece of advice and the ways an answer can express it."""

    id: str
    description: str
    phrases: tuple[str, ...]
    pattern: re.Pattern[str] = field(repr=False, compare=False, hash=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.pattern is None:
            object.__setattr__(self, "pattern", re.compile(phrase_regex(self.phrases)))

    def spans(self, normalized: str) -> list[tuple[int, int]]:
        """Character spans of every expression of this advice in already-normalised text."""
        return [match.span() for match in self.pattern.finditer(normalized)]


@dataclass(frozen=True, slots=True)
class Guideline:
    """One guideline statement for a presentation, with its published source."""

    id: str
    presentation: str
    triggers: tuple[str, ...]
    urgency: Urgency
    must_advise: tuple[AdvicePoint, ...]
    must_not: tuple[AdvicePoint, ...]
    source: str
    context: tuple[str, ...] = ()
    """When non-empty, one of these phrases must also occur in the prompt (e.g. an age)."""
    supersedes: tuple[str, ...] = ()
    """Ids of less urgent guidelines for the same complaint, dropped when this one matches."""


# ----------------------------------------------------------------------------- loading


def _fail(path: Path, where: str, problem: str) -> ConfigError:
    return ConfigError(f"guidelines file {path}: {where}: {problem}; fix the entry "
                       f"(schema in clinical_rlhf/knowledge/guidelines.py)")


def _phrases(raw: Any, path: Path, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if raw is None and allow_empty:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise _fail(path, where, "must be a list of non-empty strings")
    phrases = tuple(normalize_text(p) for p in raw)
    for phrase in (part for p in phrases for part in p.split(_AND)):
        if not _PHRASE_RE.match(phrase):
            raise _fail(path, where, f"phrase {phrase!r} is not plain text (letters, digits, "
                                     f"spaces, ' - / . , % + &, optional trailing *)")
    if not phrases and not allow_empty:
        raise _fail(path, where, "must not be empty")
    return phrases


def _advice_points(raw: Any, path: Path, where: str,
                   phrase_sets: Mapping[str, tuple[str, ...]]) -> tuple[AdvicePoint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(path, where, "must be a list of advice points")
    points, seen = [], set()
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or set(item) - {"id", "description", "phrases", "phrase_sets"}:
            raise _fail(path, here, "needs exactly id, description, phrases (and optional phrase_sets)")
        point_id = item.get("id")
        if not isinstance(point_id, str) or not _ID_RE.match(point_id) or point_id in seen:
            raise _fail(path, here, f"id {point_id!r} must be a unique snake_case string")
        seen.add(point_id)
        phrases = list(_phrases(item.get("phrases"), path, f"{here} ({point_id}).phrases",
                                allow_empty="phrase_sets" in item))
        for set_name in item.get("phrase_sets") or ():
            if set_name not in phrase_sets:
                raise _fail(path, f"{here} ({point_id})", f"unknown phrase set {set_name!r}")
            phrases.extend(phrase_sets[set_name])
        if not phrases:
            raise _fail(path, f"{here} ({point_id})", "has no phrases")
        description = item.get("description")
        if not isinstance(description, str) or not description.strip():
            raise _fail(path, f"{here} ({point_id})", "needs a description")
        points.append(AdvicePoint(point_id, description.strip(), tuple(dict.fromkeys(phrases))))
    return tuple(points)


_GUIDELINE_KEYS = {"id", "presentation", "triggers", "context", "urgency", "supersedes",
                   "must_advise", "must_not", "source"}


def _guideline(item: Any, index: int, path: Path,
               phrase_sets: Mapping[str, tuple[str, ...]]) -> Guideline:
    where = f"guidelines[{index}]"
    if not isinstance(item, dict):
        raise _fail(path, where, "must be a mapping")
    gid = item.get("id")
    if not isinstance(gid, str) or not _ID_RE.match(gid):
        raise _fail(path, where, f"id {gid!r} must be a snake_case string")
    where = f"{where} ({gid})"
    unknown = set(item) - _GUIDELINE_KEYS
    if unknown:
        raise _fail(path, where, f"unknown key(s) {sorted(unknown)}")
    if item.get("urgency") not in URGENCIES:
        raise _fail(path, where, f"urgency {item.get('urgency')!r} must be one of {URGENCIES}")
    for key in ("presentation", "source"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise _fail(path, where, f"`{key}` must be a non-empty string")
    must_advise = _advice_points(item.get("must_advise"), path, f"{where}.must_advise", phrase_sets)
    must_not = _advice_points(item.get("must_not"), path, f"{where}.must_not", phrase_sets)
    if not must_advise and not must_not:
        raise _fail(path, where, "needs at least one must_advise or must_not point")
    return Guideline(
        id=gid, presentation=item["presentation"].strip(),
        triggers=tuple(canonical_prompt(p) for p in _phrases(item.get("triggers"), path, f"{where}.triggers")),
        urgency=item["urgency"], must_advise=must_advise, must_not=must_not,
        source=item["source"].strip(),
        context=tuple(canonical_prompt(p) for p in _phrases(item.get("context"), path, f"{where}.context",
                                                          allow_empty=True)),
        supersedes=tuple(item.get("supersedes") or ()),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"guidelines file {path} does not exist; point safety.knowledge_dir "
                          f"at a directory holding {GUIDELINES_FILE}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"guidelines file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict) or not isinstance(data.get("guidelines"), list):
        raise ConfigError(f"guidelines file {path} must be a mapping with a `guidelines:` list")
    return data


def _parse(path: Path) -> tuple[tuple[Guideline, ...], dict[str, tuple[str, ...]]]:
    data = _read(path)
    raw_sets = data.get("phrase_sets") or {}
    if not isinstance(raw_sets, dict):
        raise _fail(path, "phrase_sets", "must be a mapping of name -> list of phrases")
    phrase_sets = {name: _phrases(value, path, f"phrase_sets.{name}") for name, value in raw_sets.items()}
    guidelines = tuple(_guideline(item, i, path, phrase_sets) for i, item in enumerate(data["guidelines"]))
    ids = [g.id for g in guidelines]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise _fail(path, "guidelines", f"duplicate id(s) {duplicates}")
    for guideline in guidelines:
        unknown = set(guideline.supersedes) - set(ids)
        if unknown:
            raise _fail(path, f"guideline {guideline.id}", f"supersedes unknown id(s) {sorted(unknown)}")
    return guidelines, phrase_sets


@functools.lru_cache(maxsize=8)
def _load(directory: Path) -> tuple[tuple[Guideline, ...], dict[str, tuple[str, ...]]]:
    return _parse(directory / GUIDELINES_FILE)


def _directory(directory: Path | None) -> Path:
    if directory is not None and (Path(directory) / GUIDELINES_FILE).exists():
        return Path(directory).resolve()
    return DEFAULT_DIRECTORY


def load_guidelines(directory: Path | None = None) -> tuple[Guideline, ...]:
    """The guideline statements (cached per directory). A `directory` without a
    guidelines file (a knowledge override holding only drugs, say) falls back to the shipped one."""
    return _load(_directory(directory))[0]


def load_phrase_sets(directory: Path | None = None) -> Mapping[str, tuple[str, ...]]:
    """The named wordings of the guidelines file (`emergency_now`, `urgent_care`, ...)."""
    return _load(_directory(directory))[1]


# ----------------------------------------------------------------------------- matching


def _parts(trigger: str) -> tuple[str, ...]:
    return tuple(trigger.split(_AND))


class GuidelineMatcher:
    """Finds the guidelines whose triggers occur in a prompt with one precompiled pattern.

    Naive equivalent (what `match` must return, in file order)::

        [g for g in guidelines
         if any(all(part occurs in prompt for part in trigger.split(" + ")) for trigger in g.triggers)
         and (not g.context or any(phrase occurs in prompt for phrase in g.context))]
        minus the ids superseded by another matched guideline.

    A zero-width lookahead lets the single pattern report a phrase at every start position
    (overlapping ones too); a phrase hidden inside a longer one that matched at the same start
    is recovered through `_contained`, the precomputed phrases each phrase contains."""

    def __init__(self, guidelines: tuple[Guideline, ...]) -> None:
        self.guidelines = guidelines
        phrases = {part for g in guidelines for p in (*g.triggers, *g.context) for part in _parts(p)}
        self._pattern = re.compile(r"(?=(" + phrase_regex(phrases) + r"))")
        self._single = {p: re.compile(phrase_regex([p])) for p in phrases}
        self._contained_cache: dict[str, frozenset[str]] = {}
        self._triggers = {g.id: tuple(_parts(t) for t in g.triggers) for g in guidelines}

    def _contained(self, matched: str) -> frozenset[str]:
        found = self._contained_cache.get(matched)
        if found is None:
            found = frozenset(p for p, rx in self._single.items() if rx.search(matched))
            self._contained_cache[matched] = found
        return found

    def found_phrases(self, prompt: str) -> set[str]:
        found: set[str] = set()
        for match in self._pattern.finditer(canonical_prompt(prompt)):
            found |= self._contained(match.group(1))
        return found

    def match(self, prompt: str) -> tuple[Guideline, ...]:
        found = self.found_phrases(prompt)
        if not found:
            return ()
        matched = [g for g in self.guidelines
                   if any(found.issuperset(parts) for parts in self._triggers[g.id])
                   and (not g.context or not found.isdisjoint(g.context))]
        dropped = {sid for g in matched for sid in g.supersedes}
        return tuple(g for g in matched if g.id not in dropped)


@functools.lru_cache(maxsize=8)
def _default_matcher(directory: Path) -> GuidelineMatcher:
    return GuidelineMatcher(_load(directory)[0])


def match_guidelines(prompt: str, directory: Path | None = None) -> tuple[Guideline, ...]:
    """Guidelines whose triggers (and context, when given) occur in `prompt`, file order."""
    return _default_matcher(_directory(directory)).match(prompt)
