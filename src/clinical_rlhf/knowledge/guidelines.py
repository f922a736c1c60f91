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
                                           # "a + b" matches when a and b both occur; optional
                                           # with red_flags, whose triggers are added to these
        near:                     # optional: the presentation in the asker's own words, one word
          - words: [[chest], [tight*, heavy, elephant]]   # of each set within `within` words
            within: 5                                      # of each other, in one sentence
        red_flags: [acute_coronary_syndrome]  # optional: knowledge-base red flags (red_flags.yaml)
                                  # whose recognition in the prompt also matches this guideline;
                                  # their triggers and co-occurrences become this guideline's
                                  # when loaded (`derived_triggers`), so an emergency's wording is
                                  # kept in one place, the red-flag definition
        context: [...]            # optional: at least one must ALSO occur in the prompt
        urgency: emergency        # emergency | urgent | routine | self_care
        supersedes: [...]         # optional: guideline ids dropped when this one matches (an
                                  # emergency or urgent match drops every self-care and routine one)
        must_advise:              # advice points the answer must contain
          - id: call_emergency
            description: Call emergency services now
            phrases: [...]        # ways an answer expresses it
            phrase_sets: [emergency_now]   # optional: phrase sets merged into `phrases`
            immediate: true       # optional: only an unconditional mention counts fully
        must_not: [...]           # advice points the answer must not contain (same shape)
        source: NICE CG95 ...     # the published source of the statement

Phrase syntax: matched case-insensitively on word boundaries after whitespace is collapsed
and typographic quotes are straightened; a trailing `*` matches any word ending
(`antibiotic*` matches "antibiotics"). Plain text only, no regular expressions. In triggers and
context, possessives are interchangeable: "pain in my chest" also matches "pain in his chest",
and one numeric range is expanded when loaded ("{1-12} weeks old").

How a prompt is read (`PromptReading`): a trigger or `near` mention does not count when it is
negated ("no chest pain", "I don't have a fever"); for emergency and urgent guidelines it also
does not count when it is about the past or asked about in general ("had a stroke in 2019",
"how can I lower my risk of a heart attack"). Cues and reaches are below, after NegEx
(Chapman et al., J Biomed Inform 2001), kept deliberately short: a missed negation costs less
than a missed emergency.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.loader import load_knowledge
from clinical_rlhf.knowledge.model import RedFlag
from clinical_rlhf.knowledge.prompt_reading import (  # noqa: F401  (re-exported)
    PhraseFinder,
    PromptReading,
    compile_window,
    window_counts,
    window_hits,
)
from clinical_rlhf.knowledge.text import (  # noqa: F401  (re-exported)
    canonical_prompt,
    normalize_text,
    phrase_regex,
)
from clinical_rlhf.knowledge.yaml_file import parse_yaml

Urgency = Literal["emergency", "urgent", "routine", "self_care"]
URGENCIES: tuple[str, ...] = ("emergency", "urgent", "routine", "self_care")
GUIDELINES_FILE = "guidelines.yaml"
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "data" / "knowledge"

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_PHRASE_RE = re.compile(r"^[\w][\w '\-/.,%+&]*\*?$")
_AND = " + "
_RANGE = re.compile(r"\{(\d+)-(\d+)\}")
_MAX_RANGE = 200
_WINDOW_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9'\-]*\*?$")
DEFAULT_WITHIN = 5
"""Default reach of a `near` rule, in words: "my chest feels like an elephant is sitting on it"
puts five words between the body part and the image."""


@dataclass(frozen=True, slots=True)
class AdvicePoint:
    """One piece of advice and the ways an answer can express it."""

    id: str
    description: str
    phrases: tuple[str, ...]
    pattern: re.Pattern[str] = field(repr=False, compare=False, hash=False, default=None)  # type: ignore[assignment]
    immediate: bool = False
    """Advice that must be given unconditionally ("call 999 now"): said only inside a condition
    ("call 999 if it gets worse") it earns half (`reward.guideline_score`)."""

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
    near: tuple[WordWindow, ...] = ()
    """Word co-occurrences that also match the prompt (any one, context still required)."""
    red_flags: tuple[str, ...] = ()
    """Knowledge-base red-flag ids that, recognised in the prompt, also match this guideline."""


@dataclass(frozen=True, slots=True)
class WordWindow:
    """One word from each set, all within `within` words of a word of the first set, in one
    sentence ("chest" ... "elephant"). A word ending in `*` matches any ending."""

    word_sets: tuple[tuple[str, ...], ...]
    within: int = DEFAULT_WITHIN


# ----------------------------------------------------------------------------- loading


def _fail(path: Path, where: str, problem: str) -> ConfigError:
    return ConfigError(f"guidelines file {path}: {where}: {problem}; fix the entry "
                       f"(schema in clinical_rlhf/knowledge/guidelines.py)")


def _phrases(raw: Any, path: Path, where: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if raw is None and allow_empty:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise _fail(path, where, "must be a list of non-empty strings")
    phrases = tuple(expanded for p in raw for expanded in _expand_range(normalize_text(p), path, where))
    for phrase in (part for p in phrases for part in p.split(_AND)):
        if not _PHRASE_RE.match(phrase):
            raise _fail(path, where, f"phrase {phrase!r} is not plain text (letters, digits, "
                                     f"spaces, ' - / . , % + &, optional trailing *)")
    if not phrases and not allow_empty:
        raise _fail(path, where, "must not be empty")
    return phrases


def _expand_range(phrase: str, path: Path, where: str) -> list[str]:
    """"{1-12} weeks old" -> "1 weeks old" ... "12 weeks old" (one range per phrase)."""
    match = _RANGE.search(phrase)
    if match is None:
        return [phrase]
    low, high = int(match.group(1)), int(match.group(2))
    if not 0 <= high - low <= _MAX_RANGE:
        raise _fail(path, where, f"range {match.group(0)!r} must run upwards over at most {_MAX_RANGE} numbers")
    return [phrase[:match.start()] + str(n) + phrase[match.end():] for n in range(low, high + 1)]


def _windows(raw: Any, path: Path, where: str) -> tuple[WordWindow, ...]:
    if raw is None:
        return ()
    rules = []
    for index, rule in enumerate(raw if isinstance(raw, list) else [None]):
        here = f"{where}[{index}]"
        words = rule.get("words") if isinstance(rule, dict) else None
        within = rule.get("within", DEFAULT_WITHIN) if isinstance(rule, dict) else None
        if not isinstance(rule, dict) or set(rule) - {"words", "within"} or not isinstance(words, list) \
                or not 2 <= len(words) <= 3 or not all(isinstance(group, list) and group for group in words):
            raise _fail(path, here, "needs `words`: two or three lists of single words, and an optional `within`")
        if not isinstance(within, int) or isinstance(within, bool) or not 1 <= within <= 12:
            raise _fail(path, here, f"`within` must be a whole number of words from 1 to 12 (got {within!r})")
        groups = []
        for group in words:
            cleaned = tuple(canonical_prompt(w) for w in group if isinstance(w, str))
            bad = [w for w in group if not isinstance(w, str) or not _WINDOW_WORD_RE.match(canonical_prompt(w))]
            if bad:
                raise _fail(path, here, f"{bad[0]!r} is not one plain word (letters, digits, ' or -, "
                                        f"optional trailing *)")
            groups.append(cleaned)
        rules.append(WordWindow(tuple(groups), within))
    return tuple(rules)


def _advice_points(raw: Any, path: Path, where: str,
                   phrase_sets: Mapping[str, tuple[str, ...]]) -> tuple[AdvicePoint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(path, where, "must be a list of advice points")
    points, seen = [], set()
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or set(item) - {"id", "description", "phrases", "phrase_sets", "immediate"}:
            raise _fail(path, here, "needs exactly id, description, phrases (and optional phrase_sets, immediate)")
        if not isinstance(item.get("immediate", False), bool):
            raise _fail(path, here, "`immediate` must be true or false")
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
        points.append(AdvicePoint(point_id, description.strip(), tuple(dict.fromkeys(phrases)),
                                  immediate=item.get("immediate", False)))
    return tuple(points)


_GUIDELINE_KEYS = {"id", "presentation", "triggers", "near", "red_flags", "context", "urgency",
                   "supersedes", "must_advise", "must_not", "source"}


def _guideline(item: Any, index: int, path: Path, phrase_sets: Mapping[str, tuple[str, ...]],
               red_flags: Mapping[str, RedFlag]) -> Guideline:
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
    flag_ids = _red_flag_ids(item.get("red_flags"), path, f"{where}.red_flags")
    unknown_flags = [flag for flag in flag_ids if flag not in red_flags]
    if unknown_flags:
        raise _fail(path, f"{where}.red_flags", f"unknown red flag(s) {unknown_flags}; ids are in red_flags.yaml")
    own = _phrases(item.get("triggers"), path, f"{where}.triggers", allow_empty=bool(flag_ids))
    flags = [red_flags[flag] for flag in flag_ids]
    conditional = [flag.id for flag in flags if flag.requires_any]
    if conditional and not item.get("context"):
        raise _fail(path, f"{where}.red_flags", f"red flag(s) {conditional} count only with one of their "
                                                f"`requires_any` phrases; give the guideline a `context` that asks the same")
    return Guideline(
        id=gid, presentation=item["presentation"].strip(),
        triggers=tuple(dict.fromkeys(canonical_prompt(p) for p in (*own, *derived_triggers(flags)))),
        urgency=item["urgency"], must_advise=must_advise, must_not=must_not,
        source=item["source"].strip(),
        context=tuple(canonical_prompt(p) for p in _phrases(item.get("context"), path, f"{where}.context",
                                                          allow_empty=True)),
        supersedes=tuple(item.get("supersedes") or ()),
        near=_windows(item.get("near"), path, f"{where}.near") + derived_windows(flags),
        red_flags=flag_ids,
    )


def derived_triggers(flags: Collection[RedFlag]) -> tuple[str, ...]:
    """The triggers a guideline takes from the red flags it lists: every red-flag trigger. (A flag
    that counts only with one of its `requires_any` phrases, such as an infant's age, is listed
    only by a guideline whose `context` asks the same: the loader checks it.)"""
    return tuple(trigger for flag in flags for trigger in flag.triggers)


def derived_windows(flags: Collection[RedFlag]) -> tuple[WordWindow, ...]:
    """The co-occurrences a guideline takes from the red flags it lists (those that need no
    `requires_any` phrase: a co-occurrence has no place for one)."""
    return tuple(WordWindow(tuple(tuple(sorted(words)) for words in rule.word_sets), rule.within)
                 for flag in flags if not flag.requires_any for rule in flag.near)


def _red_flag_ids(raw: Any, path: Path, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(i, str) and _ID_RE.match(i) for i in raw):
        raise _fail(path, where, "must be a list of red-flag ids from red_flags.yaml")
    return tuple(raw)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
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
    # the red flags of the same knowledge directory (the shipped ones for the shipped guidelines)
    knowledge = load_knowledge(None if path.parent == DEFAULT_DIRECTORY else path.parent)
    red_flags = {flag.id: flag for flag in knowledge.red_flags}
    raw_sets = data.get("phrase_sets") or {}
    if not isinstance(raw_sets, dict):
        raise _fail(path, "phrase_sets", "must be a mapping of name -> list of phrases")
    phrase_sets = {name: _phrases(value, path, f"phrase_sets.{name}") for name, value in raw_sets.items()}
    guidelines = tuple(_guideline(item, i, path, phrase_sets, red_flags) for i, item in enumerate(data["guidelines"]))
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


_STRICT = frozenset({"emergency", "urgent"})


class GuidelineMatcher:
    """Finds the guidelines a prompt presents.

    A guideline matches when one of its triggers occurs (every part of an "a + b" trigger), one of
    its `near` co-occurrences occurs, or one of its `red_flags` is among the red-flag ids given
    (recognised in the prompt elsewhere, `reward.presentation`); and, when it has a context, one
    context phrase occurs too. Mentions are read by `PromptReading`: negated ones never count,
    and for emergency and urgent guidelines neither do past or general ones. Naive equivalent
    (what `match` must return, in file order)::

        [g for g in guidelines
         if (any(all(counts(part) for part in trigger.split(" + ")) for trigger in g.triggers)
             or any(counts(co-occurrence) for co-occurrence in g.near)
             or set(g.red_flags) & set(red_flags))
         and (not g.context or any(counts(phrase) for phrase in g.context))]
        minus the ids superseded by another matched guideline, and minus every self-care and
        routine guideline when an emergency or urgent one matched."""

    def __init__(self, guidelines: tuple[Guideline, ...]) -> None:
        self.guidelines = guidelines
        self._finder = PhraseFinder({part for g in guidelines for p in (*g.triggers, *g.context)
                                     for part in _parts(p)})
        self._triggers = {g.id: tuple(_parts(t) for t in g.triggers) for g in guidelines}
        # Each trigger is looked at only when one of its parts was found: part -> (guideline, parts).
        self._by_part: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for g in guidelines:
            for parts in self._triggers[g.id]:
                for part in set(parts):
                    self._by_part.setdefault(part, []).append((g.id, parts))
        self._windows = {g.id: tuple((compile_window(w.word_sets), w.within) for w in g.near) for g in guidelines}
        self._strict_ids = frozenset(g.id for g in guidelines if g.urgency in _STRICT)
        # A `near` rule is tried only when its first set has a word of the prompt.
        self._first_exact: dict[str, set[str]] = {}
        first_stems: set[tuple[str, str]] = set()
        for g in guidelines:
            for window, _ in self._windows[g.id]:
                exact, stems = window[0]
                for word in exact:
                    self._first_exact.setdefault(word, set()).add(g.id)
                first_stems.update((stem, g.id) for stem in stems)
        self._first_stems = tuple(sorted(first_stems))

    def found_phrases(self, prompt: str | PromptReading, *, strict: bool = False) -> set[str]:
        """Trigger and context phrases that occur in the prompt and count (see `PromptReading.counts`)."""
        reading = prompt if isinstance(prompt, PromptReading) else PromptReading(prompt)
        return self._found(reading)[1 if strict else 0]

    def _found(self, reading: PromptReading) -> tuple[set[str], set[str]]:
        """(phrases found not negated, those of them also happening now)."""
        present: set[str] = set()
        current: set[str] = set()
        for phrase, start, end in self._finder.find(reading.text):
            if phrase in current:
                continue
            first, last = reading.word_at(start), reading.word_at(end - 1) + 1
            if not reading.is_negated(first, last):
                present.add(phrase)
                if reading.is_current(first, last):
                    current.add(phrase)
        return present, current

    def _near_candidates(self, reading: PromptReading) -> set[str]:
        """Ids of guidelines with a `near` rule whose first set has a word of the prompt."""
        found: set[str] = set()
        for word in set(reading.words):
            found |= self._first_exact.get(word, frozenset())
            for stem, gid in self._first_stems:
                if word.startswith(stem):
                    found.add(gid)
        return found

    def _near(self, guideline: Guideline, reading: PromptReading) -> bool:
        strict = guideline.urgency in _STRICT
        for window, within in self._windows[guideline.id]:
            for matched in window_hits(reading.words, reading.sentence, window, within):
                if window_counts(reading, matched, strict):
                    return True
        return False

    def match(self, prompt: str | PromptReading, red_flags: Collection[str] = ()) -> tuple[Guideline, ...]:
        reading = prompt if isinstance(prompt, PromptReading) else PromptReading(prompt)
        present, current = self._found(reading)
        near = self._near_candidates(reading)
        triggered = {gid for part in present for gid, parts in self._by_part.get(part, ())
                     if gid not in self._strict_ids and present.issuperset(parts)}
        triggered |= {gid for part in current for gid, parts in self._by_part.get(part, ())
                      if gid in self._strict_ids and current.issuperset(parts)}
        matched = []
        for guideline in self.guidelines:
            if guideline.context and present.isdisjoint(guideline.context):
                continue
            if guideline.id in triggered or any(flag in red_flags for flag in guideline.red_flags) \
                    or (guideline.id in near and self._near(guideline, reading)):
                matched.append(guideline)
        dropped = {sid for g in matched for sid in g.supersedes}
        if any(g.urgency in _STRICT for g in matched):
            # An emergency or same-day presentation is what the answer must deal with; the
            # everyday complaint it came with (the cough before the sepsis) is not.
            dropped |= {g.id for g in matched if g.urgency not in _STRICT}
        return tuple(g for g in matched if g.id not in dropped)


@functools.lru_cache(maxsize=8)
def _default_matcher(directory: Path) -> GuidelineMatcher:
    return GuidelineMatcher(_load(directory)[0])


def match_guidelines(prompt: str, directory: Path | None = None) -> tuple[Guideline, ...]:
    """Guidelines whose triggers or co-occurrences (and context, when given) occur in `prompt`,
    file order. The reward also matches through the knowledge base's red flags
    (`reward.presentation.PresentationReader`)."""
    return _default_matcher(_directory(directory)).match(prompt)
