"""The triage rules below emergency level, and intent, from `data/knowledge/triage.yaml`.

Red flags (`red_flags.yaml`) say what needs emergency care; this file says what needs care the same
day (`urgent`), a planned appointment (`routine`) or home and pharmacy care (`self_care`), which
circumstances raise a question's urgency (`modifier`: an infant's age, pregnancy, chemotherapy...),
and what a person intends (`intent`: self-harm, misuse, harm to others). Each rule carries its
clinical source; the file's header gives the schema. This module reads and validates it once per
directory; `clinical_rlhf.safety.triage.TriageReader` matches it.

    data = load_triage()                 # shipped file, or a knowledge directory's own triage.yaml
    data.rules                           # tuple[TriageRule, ...]
    data.default_urgency                 # "routine": the level when nothing is recognised
    data.red_flag_intents                # {"suicidality_self_harm": "self_harm", ...}
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.loader import (
    _check_ids_unique,
    _Entry,
    _expand_ranges,
    _near_rules,
    entries_of,
    read_knowledge_yaml,
    shipped_directory,
)
from clinical_rlhf.knowledge.model import NearRule

TRIAGE_FILE = "triage.yaml"
URGENCY_LEVELS = ("emergency", "urgent", "routine", "self_care")
"""The levels of `clinical_rlhf.safety.triage.URGENCIES` (knowledge/ does not import safety/; a test
keeps the two equal)."""
RULE_KINDS = ("symptom", "modifier", "intent")
INTENTS = ("self_harm", "misuse", "harm_others")
_RULE_KEYS = {"id", "name", "kind", "urgency", "intent", "triggers", "trigger_groups", "near", "exclusions",
              "context", "min_age_years", "max_age_years", "counts_hypothetical", "supersedes", "advice",
              "source"}


@dataclass(frozen=True, slots=True)
class Group:
    """Phrases several rules share (`fever`, `pregnancy`), and the longer phrases in which they mean
    something else ("hay fever"): a rule that takes a group's phrases as triggers takes its
    exclusions too."""

    phrases: tuple[str, ...]
    exclusions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TriageRule:
    id: str
    name: str
    kind: str
    """`symptom` (a complaint with its own level), `modifier` (a circumstance that raises the level
    of what it comes with) or `intent`."""
    urgency: str
    """What the rule alone asks for (one of `URGENCY_LEVELS`)."""
    triggers: tuple[str, ...]
    """Phrases that signal it (those of `trigger_groups` included), matched on normalised words."""
    source: str
    near: tuple[NearRule, ...] = ()
    exclusions: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    """When set, a trigger counts only if one of these phrases is also in the question, neither
    negated nor past (who it applies to: "chemotherapy", "pregnant", "my toddler")."""
    min_age_years: float | None = None
    max_age_years: float | None = None
    """When set, a stated age must fall in [min, max) ("fever" in a baby under 3 months)."""
    intent: str | None = None
    """For `intent` rules: `self_harm`, `misuse` or `harm_others`."""
    counts_hypothetical: bool = False
    """Count mentions that the context reader calls hypothetical ("what's good for hay fever?").
    Intent rules always do: "what if I took them all" states an intent."""
    supersedes: tuple[str, ...] = ()
    """Red flags (ids of `red_flags.yaml`) and findings (of `clinical_signs.yaml`) whose reading this
    rule replaces when it counts: a stroke symptom that has fully resolved is a TIA (urgent), not a
    stroke (emergency)."""
    advice: str = ""
    """What the source advises at this level, in one sentence."""

    def applies_to_ages(self, ages: tuple[float, ...] | list[float]) -> bool:
        """True when the rule has no age bound, or a stated age falls inside it."""
        if self.min_age_years is None and self.max_age_years is None:
            return True
        low = self.min_age_years if self.min_age_years is not None else 0.0
        high = self.max_age_years if self.max_age_years is not None else float("inf")
        return any(low <= age < high for age in ages)


@dataclass(frozen=True)
class TriageData:
    rules: tuple[TriageRule, ...]
    default_urgency: str
    """The level of a question in which nothing is recognised."""
    default_reason: str
    red_flag_intents: dict[str, str]
    """Red flag id -> the intent it states (`suicidality_self_harm` states `self_harm`)."""
    path: Path


@functools.lru_cache(maxsize=8)
def load_triage(directory: Path | None = None) -> TriageData:
    """The triage file of a knowledge directory (the shipped one when the directory has none),
    validated; every problem is one `ConfigError` naming the file, the entry and the key."""
    path = Path(directory) / TRIAGE_FILE if directory is not None else None
    if path is None or not path.is_file():
        path = shipped_directory() / TRIAGE_FILE
    data = read_knowledge_yaml(path)
    header = _read_header(path, data)
    groups = header["groups"]
    rules = entries_of(path, data, "rules", functools.partial(_rule, groups))
    _check_ids_unique(path, rules)
    return TriageData(rules=rules, default_urgency=header["default_urgency"], default_reason=header["default_reason"],
                      red_flag_intents=header["red_flag_intents"], path=path)


def _read_header(path: Path, data: Any) -> dict[str, Any]:
    """`default_urgency`, `default_reason`, `groups` and `red_flag_intents` of the parsed file, checked."""
    if not isinstance(data, dict):
        raise ConfigError(f"triage file {path} must be a mapping with default_urgency, groups and rules")
    default = data.get("default_urgency")
    if default not in URGENCY_LEVELS:
        raise ConfigError(f"triage file {path}: `default_urgency` must be one of {', '.join(URGENCY_LEVELS)} "
                          f"(got {default!r})")
    reason = data.get("default_reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"triage file {path}: `default_reason` must say why the default level is what it is")
    groups = data.get("groups", {})
    if not isinstance(groups, dict) or not all(
            isinstance(name, str) and isinstance(body, dict) and set(body) <= {"purpose", "phrases", "exclusions"}
            and isinstance(body.get("purpose"), str) and _phrase_list(body.get("phrases"))
            and _phrase_list(body.get("exclusions", ["-"])) for name, body in groups.items()):
        raise ConfigError(f"triage file {path}: `groups` must map each name to {{purpose, phrases: [...], "
                          f"exclusions: [...] (optional)}} with non-empty lists of phrases")
    intents = data.get("red_flag_intents", {})
    if not isinstance(intents, dict) or not all(value in INTENTS for value in intents.values()):
        raise ConfigError(f"triage file {path}: `red_flag_intents` must map red flag ids to one of "
                          f"{', '.join(INTENTS)}")
    return {"default_urgency": default, "default_reason": reason.strip(), "red_flag_intents": dict(intents),
            "groups": {name: Group(_expanded(body["phrases"]), _expanded(body.get("exclusions", [])))
                       for name, body in groups.items()}}


def _phrase_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(p, str) and p.strip() for p in value)


def _expanded(phrases: list[str]) -> tuple[str, ...]:
    return tuple(phrase for p in phrases for phrase in _expand_ranges(p.strip()))


def _rule(groups: dict[str, Group], raw: dict[str, Any], entry: _Entry) -> TriageRule:
    entry.check_keys(_RULE_KEYS)
    kind = _choice(entry, "kind", RULE_KINDS)
    urgency = _choice(entry, "urgency", URGENCY_LEVELS)
    intent = raw.get("intent")
    if (kind == "intent") != (intent is not None):
        entry.fail("intent", f"is required on (and only on) rules of kind intent: one of {', '.join(INTENTS)}")
    if intent is not None:
        _choice(entry, "intent", INTENTS)
    trigger_groups = _groups(entry, groups, "trigger_groups")
    triggers = entry.phrases("triggers") + tuple(p for group in trigger_groups for p in group.phrases)
    if not triggers:
        entry.fail("triggers", "or `trigger_groups` must give at least one phrase")
    counts = raw.get("counts_hypothetical", kind == "intent")
    if not isinstance(counts, bool):
        entry.fail("counts_hypothetical", "must be true or false")
    return TriageRule(id=entry.text("id"), name=entry.text("name"), kind=kind, urgency=urgency,
                      triggers=triggers, source=entry.text("source"), near=_near_rules(entry),
                      exclusions=entry.phrases("exclusions")
                      + tuple(p for group in trigger_groups for p in group.exclusions),
                      context=tuple(p for group in _groups(entry, groups, "context") for p in group.phrases),
                      min_age_years=_age(entry, "min_age_years"), max_age_years=_age(entry, "max_age_years"),
                      intent=intent, counts_hypothetical=counts, supersedes=_supersedes(entry),
                      advice=entry.text("advice", required=False))


def _supersedes(entry: _Entry) -> tuple[str, ...]:
    names = entry.raw.get("supersedes", [])
    if not isinstance(names, list) or not all(isinstance(name, str) and name for name in names):
        entry.fail("supersedes", "must be a list of red flag ids (red_flags.yaml) or finding ids (clinical_signs.yaml)")
    if names and URGENCY_LEVELS.index(entry.raw["urgency"]) == 0:
        entry.fail("supersedes", "only a rule below emergency can replace a red flag's reading")
    return tuple(names)


def _choice(entry: _Entry, key: str, allowed: tuple[str, ...]) -> str:
    value = entry.raw.get(key)
    if value not in allowed:
        entry.fail(key, f"must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _groups(entry: _Entry, groups: dict[str, Group], key: str) -> list[Group]:
    """The groups a rule names under `key`."""
    names = entry.raw.get(key, [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        entry.fail(key, "must be a list of group names (see `groups` at the top of the file)")
    unknown = [name for name in names if name not in groups]
    if unknown:
        entry.fail(key, f"names unknown group(s) {', '.join(unknown)}; known: {', '.join(sorted(groups))}")
    return [groups[name] for name in names]


def _age(entry: _Entry, key: str) -> float | None:
    value = entry.raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        entry.fail(key, f"must be an age in years, 0 or more (got {value!r})")
    return float(value)
