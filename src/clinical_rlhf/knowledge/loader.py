"""Read and validate the knowledge YAML files; every problem becomes one ConfigError naming the
file, the entry and the key, with what would fix it."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.model import (
    CLASS_PREFIX,
    SEVERITY_RANK,
    Contraindication,
    Drug,
    Interaction,
    KnowledgeBase,
    NearRule,
    RedFlag,
    normalise_term,
)
from clinical_rlhf.knowledge.yaml_file import parse_yaml

FILES = {
    "drugs": "drugs.yaml",
    "interactions": "interactions.yaml",
    "contraindications": "contraindications.yaml",
    "red_flags": "red_flags.yaml",
}

# A phrase may hold one numeric range such as "{1-12} weeks old", expanded at load time so the
# data stays short and the matcher still sees plain phrases.
_RANGE = re.compile(r"\{(\d+)-(\d+)\}")

_cache: dict[str, KnowledgeBase] = {}
_cache_lock = threading.Lock()


def shipped_directory() -> Path:
    """The knowledge base installed with the package (`clinical_rlhf/data/knowledge`)."""
    return Path(str(resources.files("clinical_rlhf") / "data" / "knowledge"))


def load_knowledge(directory: Path | str | None = None) -> KnowledgeBase:
    """Load, validate and cache the knowledge base.

    `directory` overrides the shipped files one by one: a file present there replaces the
    shipped file of the same name, the others come from the package. Cached per directory, so
    every component of a process shares one instance.
    """
    key = str(Path(directory).resolve()) if directory is not None else ""
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _cache[key] = _load(Path(directory) if directory is not None else None)
        return cached


def _load(directory: Path | None) -> KnowledgeBase:
    if directory is not None and not directory.is_dir():
        raise ConfigError(f"knowledge directory {directory} does not exist; set safety.knowledge_dir "
                          f"to a directory of knowledge YAML files or remove the key")
    paths = {}
    for section, filename in FILES.items():
        override = directory / filename if directory is not None else None
        paths[section] = override if override is not None and override.is_file() \
            else shipped_directory() / filename
    drugs = _read_entries(paths["drugs"], "drugs", _drug)
    interactions = _read_entries(paths["interactions"], "interactions", _interaction)
    contraindications = _read_entries(paths["contraindications"], "contraindications", _contraindication)
    red_flags = _read_entries(paths["red_flags"], "red_flags", _red_flag)
    _check_drug_terms_unique(paths["drugs"], drugs)
    known = {drug.name for drug in drugs} | {CLASS_PREFIX + c for drug in drugs for c in drug.classes}
    for rule in interactions:
        for side in (rule.a, rule.b):
            _check_reference(paths["interactions"], rule.id, side, known)
    for rule in contraindications:
        _check_reference(paths["contraindications"], rule.id, rule.drug, known)
    for path, records in ((paths["interactions"], interactions),
                          (paths["contraindications"], contraindications),
                          (paths["red_flags"], red_flags)):
        _check_ids_unique(path, records)
    return KnowledgeBase(drugs=drugs, interactions=interactions, contraindications=contraindications,
                         red_flags=red_flags, directory=directory)


# ----------------------------------------------------------------------------- reading


def _read_entries(path: Path, section: str, build: Callable[[dict[str, Any], _Entry], Any]) -> tuple:
    return entries_of(path, read_knowledge_yaml(path), section, build)


def read_knowledge_yaml(path: Path) -> Any:
    """A knowledge file's YAML, parsed; a file that cannot be read or parsed is one `ConfigError`
    naming the file (and the line, for a syntax error)."""
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"knowledge file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"knowledge file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"knowledge file {path} is not valid YAML{where} ({problem}); "
                          f"fix the syntax there") from None


def entries_of(path: Path, data: Any, section: str, build: Callable[[dict[str, Any], _Entry], Any]) -> tuple:
    """The records `build` makes of each entry of `data`'s top-level `section` list (`data`: the
    parsed file at `path`, named in every error)."""
    if not isinstance(data, dict) or not isinstance(data.get(section), list):
        raise ConfigError(f"knowledge file {path} must hold a top-level `{section}:` list of entries")
    records = []
    for index, raw in enumerate(data[section], start=1):
        entry = _Entry(path, index, raw)
        records.append(build(raw, entry))
    return tuple(records)


class _Entry:
    """Typed access to one YAML entry; every error names the file, the entry and the key."""

    def __init__(self, path: Path, index: int, raw: Any) -> None:
        self.path, self.index, self.raw = path, index, raw
        if not isinstance(raw, dict):
            self.fail("", f"must be a mapping of keys, not {type(raw).__name__}")
        self.label = raw.get("id") or raw.get("name") or "?"

    def fail(self, key: str, problem: str) -> None:
        where = f"key `{key}` " if key else ""
        raise ConfigError(f"knowledge file {self.path}: entry {self.index} "
                          f"(`{getattr(self, 'label', '?')}`): {where}{problem}")

    def check_keys(self, allowed: set[str]) -> None:
        for key in self.raw:
            if key not in allowed:
                self.fail(key, f"is unknown; allowed keys are {', '.join(sorted(allowed))}")

    def text(self, key: str, required: bool = True) -> str:
        value = self.raw.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "is required and must be a non-empty string")
        return value.strip()

    def phrases(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(key, "must be a list of non-empty strings")
        if required and not value:
            self.fail(key, "must list at least one phrase")
        return tuple(phrase for v in value for phrase in _expand_ranges(v.strip()))

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(key, f"must be a positive number (got {value!r})")
        return float(value)

    def numbers(self, key: str) -> tuple[float, ...]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value):
            self.fail(key, f"must be a list of positive numbers (got {value!r})")
        return tuple(float(v) for v in value)

    def severity(self) -> str:
        value = self.raw.get("severity")
        if value not in SEVERITY_RANK:
            self.fail("severity", f"must be one of {', '.join(SEVERITY_RANK)} (got {value!r})")
        return value


def _expand_ranges(phrase: str) -> list[str]:
    """"{1-3} weeks old" -> ["1 weeks old", "2 weeks old", "3 weeks old"]."""
    match = _RANGE.search(phrase)
    if match is None:
        return [phrase]
    low, high = int(match.group(1)), int(match.group(2))
    return [phrase[:match.start()] + str(n) + phrase[match.end():] for n in range(low, high + 1)]


# ----------------------------------------------------------------------------- builders

_DRUG_KEYS = {"name", "synonyms", "brands", "classes", "max_daily_mg", "max_single_mg",
              "max_weekly_mg", "pediatric_max_mg_per_kg_day", "pediatric_max_single_mg_per_kg",
              "usual_adult_dose",
              "common_strengths_mg", "source", "max_single_units", "max_daily_units", "liquids_mg_per_5ml",
              "highest_label_daily_mg"}


def _drug(raw: dict[str, Any], entry: _Entry) -> Drug:
    entry.check_keys(_DRUG_KEYS)
    max_daily, max_single = entry.number("max_daily_mg"), entry.number("max_single_mg")
    if max_daily is not None and max_single is not None and max_single > max_daily:
        entry.fail("max_single_mg", f"({max_single:g}) exceeds max_daily_mg ({max_daily:g})")
    per_kg_day = entry.number("pediatric_max_mg_per_kg_day")
    per_kg_single = entry.number("pediatric_max_single_mg_per_kg")
    if per_kg_day is not None and per_kg_single is not None and per_kg_single > per_kg_day:
        entry.fail("pediatric_max_single_mg_per_kg",
                   f"({per_kg_single:g}) exceeds pediatric_max_mg_per_kg_day ({per_kg_day:g})")
    single_units, daily_units = entry.number("max_single_units"), entry.number("max_daily_units")
    if single_units is not None and daily_units is not None and single_units > daily_units:
        entry.fail("max_single_units", f"({single_units:g}) exceeds max_daily_units ({daily_units:g})")
    return Drug(
        name=entry.text("name").lower(),
        synonyms=entry.phrases("synonyms"),
        brands=entry.phrases("brands"),
        classes=entry.phrases("classes"),
        max_daily_mg=max_daily,
        max_single_mg=max_single,
        pediatric_max_mg_per_kg_day=per_kg_day,
        usual_adult_dose=entry.text("usual_adult_dose", required=False),
        common_strengths_mg=entry.numbers("common_strengths_mg"),
        source=entry.text("source"),
        max_weekly_mg=entry.number("max_weekly_mg"),
        pediatric_max_single_mg_per_kg=per_kg_single,
        max_single_units=single_units,
        max_daily_units=daily_units,
        liquids_mg_per_5ml=_liquids(entry),
        highest_label_daily_mg=entry.number("highest_label_daily_mg"),
    )


def _liquids(entry: _Entry) -> tuple[tuple[str, float], ...]:
    """A drug's `liquids_mg_per_5ml`: product name -> mg per 5 mL."""
    value = entry.raw.get("liquids_mg_per_5ml", {})
    if not isinstance(value, dict) or not all(
            isinstance(name, str) and name.strip() and isinstance(mg, (int, float)) and not isinstance(mg, bool)
            and mg > 0 for name, mg in value.items()):
        entry.fail("liquids_mg_per_5ml", f"must map product names to positive mg per 5 mL (got {value!r})")
    return tuple((name.strip(), float(mg)) for name, mg in value.items())


def _interaction(raw: dict[str, Any], entry: _Entry) -> Interaction:
    entry.check_keys({"id", "a", "b", "severity", "effect", "source"})
    return Interaction(id=entry.text("id"), a=entry.text("a"), b=entry.text("b"),
                       severity=entry.severity(), effect=entry.text("effect"), source=entry.text("source"))


def _contraindication(raw: dict[str, Any], entry: _Entry) -> Contraindication:
    entry.check_keys({"id", "drug", "condition", "condition_terms", "severity", "reason", "source",
                      "min_age_years", "max_age_years"})
    rule = Contraindication(
        id=entry.text("id"), drug=entry.text("drug"), condition=entry.text("condition"),
        condition_terms=entry.phrases("condition_terms"), severity=entry.severity(),
        reason=entry.text("reason"), source=entry.text("source"),
        min_age_years=entry.number("min_age_years"), max_age_years=entry.number("max_age_years"))
    if not rule.condition_terms and not rule.age_limited:
        entry.fail("condition_terms", "must list phrases unless min_age_years/max_age_years is set")
    return rule


def _red_flag(raw: dict[str, Any], entry: _Entry) -> RedFlag:
    entry.check_keys({"id", "name", "category", "triggers", "advice", "source", "requires_any", "near",
                      "exclusions"})
    return RedFlag(id=entry.text("id"), name=entry.text("name"), category=entry.text("category"),
                   triggers=entry.phrases("triggers", required=True), advice=entry.text("advice"),
                   source=entry.text("source"), requires_any=entry.phrases("requires_any"),
                   near=_near_rules(entry), exclusions=entry.phrases("exclusions"))


def _near_rules(entry: _Entry) -> tuple[NearRule, ...]:
    """`near: [{words: [[chest], [pain, pressure]], within: 4}]`: single words, two or three sets."""
    value = entry.raw.get("near", [])
    if not isinstance(value, list):
        entry.fail("near", "must be a list of {words: [[...], [...]], within: N}")
    rules = []
    for rule in value:
        words = rule.get("words") if isinstance(rule, dict) else None
        within = rule.get("within", 4) if isinstance(rule, dict) else None
        valid = (isinstance(words, list) and 2 <= len(words) <= 3 and all(
            isinstance(group, list) and group and all(isinstance(w, str) and w.strip() and " " not in w.strip()
                                                      for w in group) for group in words))
        if not valid or not isinstance(within, int) or isinstance(within, bool) or within < 1:
            entry.fail("near", "each rule needs `words`: two or three lists of single words, and an optional "
                               "positive integer `within`")
        rules.append(NearRule(tuple(frozenset(w.strip().lower() for w in group) for group in words), within))
    return tuple(rules)


# ----------------------------------------------------------------------------- cross-checks


def _check_drug_terms_unique(path: Path, drugs: tuple[Drug, ...]) -> None:
    owner: dict[str, str] = {}
    for drug in drugs:
        for term in {normalise_term(t) for t in drug.terms}:
            if term in owner and owner[term] != drug.name:
                raise ConfigError(f"knowledge file {path}: `{term}` names both `{owner[term]}` and "
                                  f"`{drug.name}`; a name, brand or synonym must belong to one drug")
            owner[term] = drug.name


def _check_reference(path: Path, rule_id: str, reference: str, known: set[str]) -> None:
    if reference not in known:
        raise ConfigError(f"knowledge file {path}: rule `{rule_id}` refers to `{reference}`, which is "
                          f"neither a drug name nor a `class:` used by any drug in drugs.yaml")


def _check_ids_unique(path: Path, records: tuple) -> None:
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ConfigError(f"knowledge file {path}: id `{record.id}` is used twice; ids must be unique")
        seen.add(record.id)
