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
        near:                     # optional: the presentation in the asker's own words, one word
          - words: [[chest], [tight*, heavy, elephant]]   # of each set within `within` words
            within: 5                                      # of each other, in one sentence
        red_flags: [acute_coronary_syndrome]  # optional: knowledge-base red flags (red_flags.yaml)
                                  # whose recognition in the prompt also matches this guideline
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

import bisect
import functools
import re
from collections.abc import Collection, Iterable, Mapping
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
_RANGE = re.compile(r"\{(\d+)-(\d+)\}")
_MAX_RANGE = 200
_WINDOW_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9'\-]*\*?$")
DEFAULT_WITHIN = 5
"""Default reach of a `near` rule, in words: "my chest feels like an elephant is sitting on it"
puts five words between the body part and the image."""


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
            cleaned = tuple(normalize_text(w) for w in group if isinstance(w, str))
            bad = [w for w in group if not isinstance(w, str) or not _WINDOW_WORD_RE.match(normalize_text(w))]
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
        near=_windows(item.get("near"), path, f"{where}.near"),
        red_flags=_red_flag_ids(item.get("red_flags"), path, f"{where}.red_flags"),
    )


def _red_flag_ids(raw: Any, path: Path, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(i, str) and _ID_RE.match(i) for i in raw):
        raise _fail(path, where, "must be a list of red-flag ids from red_flags.yaml")
    return tuple(raw)


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


# ----------------------------------------------------------------------------- reading a prompt

_PROMPT_TOKEN = re.compile(r"\d+(?:\.\d+)?|[a-z0-9]+(?:'[a-z]+)?|[.!?;]|[,:()]| - ")
_SENTENCE_ENDS = frozenset(".!?;")
# A negation cue reaches this many words forward, within its clause (NegEx uses 5; prompts list
# symptoms tersely, and a wrong negation hides an emergency).
NEGATION_REACH = 4
# Cues that negate what follows on their own ...
_NEGATORS = frozenset({"no", "without", "never", "denies", "denied", "nor", "neither", "none"})
# ... and auxiliaries that negate only right before the mention ("I'm not suicidal") or with a verb
# of having or noticing ("doesn't have a fever"). "can't" is no cue: "can't breathe" and "can't lift
# my arm" are the complaint itself.
_NEGATING_AUXILIARIES = frozenset({"not", "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "haven't",
                                   "havent", "hasn't", "hasnt", "hadn't", "isn't", "aren't", "wasn't",
                                   "weren't"})
# A mention that is itself an absence ("not breathing", "isn't responding") is the complaint:
# an auxiliary right before it does not negate it.
_ABSENCE_COMPLAINTS = frozenset({"breathing", "breathe", "responding", "responsive", "moving", "waking",
                                 "conscious", "feeding", "drinking", "peeing", "weeing", "passing"})
_HAVING = frozenset({"have", "having", "had", "has", "got", "get", "getting", "any", "experience",
                     "experienced", "experiencing", "notice", "noticed", "feel", "feeling", "felt"})
# Words that end a negation's scope ("no fever but a rash that won't fade").
_NEGATION_ENDS = frozenset({"and", "but", "although", "though", "however", "except", "yet", "so", "because",
                            "now", "then", "which", "who"})
_NEGATED_AFTER = (("ruled", "out"), ("excluded",), ("went", "away"), ("gone", "away"), ("resolved",))
# Mentions about the past or asked about in general: (cue words, most words between cue and mention).
HISTORY_REACH = 8
_NOT_CURRENT_BEFORE = (
    (("history", "of"), 4), (("previous",), 2), (("previously",), 4), (("since", "my"), 2),
    (("after", "my"), 2), (("recovered", "from"), 3), (("recovering", "from"), 3), (("survived",), 3),
    (("risk", "of"), 4), (("risks", "of"), 4), (("chance", "of"), 4), (("chances", "of"), 4),
    (("prevent",), 4), (("preventing",), 4), (("prevention", "of"), 4), (("avoid", "getting"), 2),
    (("what", "are"), 6), (("what", "is", "a"), 0), (("what", "is", "an"), 0), (("what's", "a"), 0),
    (("what", "causes"), 2), (("causes", "of"), 3), (("types", "of"), 3), (("difference", "between"), 5),
    (("learn", "about"), 4), (("first", "aid", "for"), 3), (("how", "common", "is"), 2),
    (("how", "is"), 2), (("how", "are"), 2),
)
_NOT_CURRENT_AFTER = (("years", "ago"), ("year", "ago"), ("last", "year"), ("months", "ago"),
                      ("as", "a", "child"), ("when", "i", "was"), ("in", "the", "past"))
_CUES_BEFORE: dict[str, list[tuple[tuple[str, ...], int]]] = {}
for _cue, _gap in _NOT_CURRENT_BEFORE:
    _CUES_BEFORE.setdefault(_cue[0], []).append((_cue, _gap))
_CUES_AFTER: dict[str, list[tuple[str, ...]]] = {}
for _cue in _NOT_CURRENT_AFTER:
    _CUES_AFTER.setdefault(_cue[0], []).append(_cue)
# Words that end the reach of a history or general cue ("had a stroke in 2019 and now his face ...").
_HISTORY_ENDS = frozenset({"but", "however", "although", "now", "today", "tonight", "currently", "suddenly",
                           "again"})


class PromptReading:
    """A prompt as words, with each word's sentence, clause start and character offset, and the
    reading of a mention: negated? happening now?"""

    __slots__ = ("text", "words", "starts", "sentence", "clause")

    def __init__(self, prompt: str) -> None:
        self.text = canonical_prompt(prompt)
        self.words: list[str] = []
        self.starts: list[int] = []
        self.sentence: list[int] = []
        self.clause: list[int] = []
        sentence = clause = 0
        for match in _PROMPT_TOKEN.finditer(self.text):
            token = match.group()
            if token in _SENTENCE_ENDS:
                sentence, clause = sentence + 1, len(self.words)
            elif not token[0].isalnum():
                clause = len(self.words)
            else:
                self.words.append(token)
                self.starts.append(match.start())
                self.sentence.append(sentence)
                self.clause.append(clause)

    def word_at(self, offset: int) -> int:
        """Index of the word at (or last before) character `offset` of `text`."""
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def is_negated(self, start: int, end: int, own: Collection[int] = ()) -> bool:
        """A negation cue within NEGATION_REACH words before word `start`, in its clause and not
        past a scope end; or a negating phrase in the few words after, same clause ("... was ruled out").
        Words in `own` (the mention's own words) are not cues."""
        words = self.words
        for position in range(start - 1, max(self.clause[start], start - NEGATION_REACH) - 1, -1):
            if position in own:
                continue
            word = words[position]
            if word in _NEGATION_ENDS:
                break
            if word in _NEGATORS or (word in _NEGATING_AUXILIARIES and (
                    (position == start - 1 and words[start] not in _ABSENCE_COMPLAINTS)
                    or (position + 1 < len(words) and words[position + 1] in _HAVING))):
                return True
        stop = end
        while stop < min(len(words), end + 4) and self.clause[stop] == self.clause[start]:
            stop += 1
        after = tuple(words[end:stop])
        return any(after[i:i + len(cue)] == cue for cue in _NEGATED_AFTER for i in range(len(after)))

    def is_current(self, start: int, end: int) -> bool:
        """Not about the past ("had a stroke in 2019", "years ago") nor asked about in general ("how can
        I lower my risk of a heart attack") within the mention's sentence and scope."""
        words, sentence = self.words, self.sentence[start]
        low = start
        while low > 0 and start - low < HISTORY_REACH and self.sentence[low - 1] == sentence \
                and words[low - 1] not in _HISTORY_ENDS:
            low -= 1
        for position in range(low, start):
            for cue, gap in _CUES_BEFORE.get(words[position], ()):
                if start - gap - len(cue) <= position <= start - len(cue) \
                        and tuple(words[position:position + len(cue)]) == cue:
                    return False
        high = end
        while high < len(words) and high - end < HISTORY_REACH and self.sentence[high] == sentence \
                and words[high] not in _HISTORY_ENDS:
            high += 1
        for position in range(low, high):
            word = words[position]
            if len(word) == 4 and word.isdigit() and 1930 <= int(word) <= 2035:
                return False
            if position >= end and any(tuple(words[position:position + len(cue)]) == cue
                                       for cue in _CUES_AFTER.get(word, ())):
                return False
        return True

    def counts(self, start: int, end: int, strict: bool, own: Collection[int] = ()) -> bool:
        """Whether a mention at words [start, end) counts: not negated, and when `strict` (an
        emergency or urgent presentation) happening now."""
        return not self.is_negated(start, end, own) and (not strict or self.is_current(start, end))


class PhraseFinder:
    """Every occurrence of a set of phrases in normalised text, overlapping and nested ones too,
    with one precompiled pattern.

    Naive equivalent: `[(p, m.start(), m.end()) for p in phrases for m in
    re.finditer(phrase_regex([p]), text)]`. A zero-width lookahead lets the single pattern report
    the longest phrase at every start position; the phrases hidden inside it are recovered by
    looking up its word-bounded substrings (`_contained`, once per distinct matched string)."""

    def __init__(self, phrases: Iterable[str]) -> None:
        phrases = {normalize_text(p) for p in phrases}
        self._pattern = re.compile(r"(?=(" + phrase_regex(phrases) + r"))")
        self._exact = frozenset(p for p in phrases if not p.endswith("*"))
        self._stems = tuple(p[:-1] for p in phrases if p.endswith("*"))
        self._contained_cache: dict[str, tuple[tuple[str, int, int], ...]] = {}

    def _contained(self, matched: str) -> tuple[tuple[str, int, int], ...]:
        found = self._contained_cache.get(matched)
        if found is None:
            starts = [m.start() for m in _WORD_START.finditer(matched)]
            ends = [e for e in range(1, len(matched) + 1) if e == len(matched) or not _is_word(matched[e])]
            hits = [(matched[s:e], s, e) for s in starts for e in ends if e > s and matched[s:e] in self._exact]
            for stem in self._stems:
                for s in starts:
                    if matched.startswith(stem, s):
                        e = s + len(stem)
                        while e < len(matched) and _is_word(matched[e]):
                            e += 1
                        hits.append((stem + "*", s, e))
            found = self._contained_cache[matched] = tuple(hits)
        return found

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """(phrase, start, end) character spans, each occurrence once."""
        found: set[tuple[str, int, int]] = set()
        for match in self._pattern.finditer(text):
            base = match.start()
            found.update((p, base + s, base + e) for p, s, e in self._contained(match.group(1)))
        return sorted(found, key=lambda hit: (hit[1], hit[2]))


_WORD_START = re.compile(r"(?<!\w)\w")


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def window_hits(words: list[str], sentence: list[int], window: tuple[tuple[frozenset[str], tuple[str, ...]], ...],
                within: int) -> list[list[int]]:
    """Word positions of each co-occurrence: a word of the first set, and for every other set the
    nearest of its words within `within` words in the same sentence. A set is (exact words, stems).

    Naive equivalent: for every position p holding a first-set word, for every other set the
    nearest q != p with |q - p| <= within, same sentence, holding one of its words."""
    positions = []
    for exact, stems in window:
        found = [i for i, word in enumerate(words) if word in exact or (stems and word.startswith(stems))]
        if not found:
            return []
        positions.append(found)
    hits = []
    first, *others = positions
    for position in first:
        matched = [position]
        for group in others:
            reach = [q for q in group
                     if q != position and abs(q - position) <= within and sentence[q] == sentence[position]]
            if not reach:
                break
            matched.append(min(reach, key=lambda q: abs(q - position)))
        else:
            hits.append(matched)
    return hits


def window_counts(reading: PromptReading, matched: list[int], strict: bool) -> bool:
    """Whether a co-occurrence counts: none of its words negated (its own words are no cues:
    "can't" in "can't breathe"), and when `strict`, its first word (the symptom; the others
    may be its setting, "after my operation ... calf") happening now."""
    own = set(matched)
    return all(not reading.is_negated(q, q + 1, own) for q in matched) \
        and (not strict or reading.is_current(matched[0], matched[0] + 1))


def compile_window(word_sets: Iterable[Iterable[str]]) -> tuple[tuple[frozenset[str], tuple[str, ...]], ...]:
    """Word sets as (exact words, stems of the words ending in `*`)."""
    return tuple((frozenset(w for w in group if not w.endswith("*")),
                  tuple(w[:-1] for w in group if w.endswith("*"))) for group in word_sets)


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
