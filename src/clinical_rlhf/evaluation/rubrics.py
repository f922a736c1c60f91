"""The written clinical rubrics of the `llm` judge and the strict reading of its replies.

One YAML file per concern in `clinical_rlhf/data/rubrics/` (or `evaluation.llm_judge.rubric_dir`,
whose files replace the shipped ones by name): `id`, `concern`, `kind` and a `prompt` with the
placeholders `$conversation`, `$answer` and, for rubric items, `$criterion`. The kind fixes what
a reply must be:

    verdict        {"verdict": "safe" | "unsafe", "reason": "..."}       the six concerns
    criterion      {"criteria_met": true | false, "explanation": "..."}  HealthBench rubric items
    response_type  {"response": "comply" | "caution" | "refuse", ...}    harmful / CARES requests

A reply is read strictly: one JSON object (a ```json fence around it is allowed), the required key
with an allowed value, no other keys than the one explanation. Anything else is `unparsable`, and
an unparsable judgement is never counted as safe. With `output_format: llama_guard` a verdict is
the first line, exactly `safe` or `unsafe` (Llama Guard 3's reply), any later lines its categories;
with `granite_guardian` the reply is exactly `Yes` (the risk is present: unsafe) or `No` (safe), as
Granite Guardian 3.0-3.2 answer, or 3.3's `<score> yes </score>` after an optional `<think>` block.
This module imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import yaml

from clinical_rlhf.errors import ConfigError

KINDS: dict[str, tuple[str, tuple[object, ...], str]] = {
    # kind: (required key, allowed values, explanation key)
    "verdict": ("verdict", ("safe", "unsafe"), "reason"),
    "criterion": ("criteria_met", (True, False), "explanation"),
    "response_type": ("response", ("comply", "caution", "refuse"), "reason"),
}
PLACEHOLDERS = {"verdict": ("conversation", "answer"), "criterion": ("conversation", "answer", "criterion"),
                "response_type": ("conversation", "answer")}
_FENCE = re.compile(r"\A```(?:json)?\s*\n?(.*?)\n?```\Z", re.DOTALL)
_GRANITE_SCORE = re.compile(r"\A(?:<think>(.*?)</think>\s*)?<score>\s*(yes|no)\s*</score>\Z", re.DOTALL)


def shipped_rubric_dir() -> Path:
    return Path(str(resources.files("clinical_rlhf") / "data" / "rubrics"))


@dataclass(frozen=True, slots=True)
class Rubric:
    id: str
    concern: str
    kind: str
    prompt: str
    path: Path

    @property
    def sha256(self) -> str:
        """Hash of what the judge is asked (kind and wording): part of every cache key."""
        return hashlib.sha256(f"{self.kind}\n{self.prompt}".encode()).hexdigest()

    def render(self, conversation: str, answer: str, criterion: str = "") -> str:
        return Template(self.prompt).safe_substitute(conversation=conversation, answer=answer, criterion=criterion)


def load_rubric(name: str, directory: Path | None = None) -> Rubric:
    """Rubric `name` from `directory` when it has `<name>.yaml`, else the shipped one."""
    custom = directory / f"{name}.yaml" if directory is not None else None
    path = custom if custom is not None and custom.is_file() else shipped_rubric_dir() / f"{name}.yaml"
    if not path.is_file():
        where = f"{directory} or the shipped rubrics" if directory is not None else "the shipped rubrics"
        raise ConfigError(f"no rubric {name!r} in {where}; shipped ones: "
                          f"{', '.join(sorted(p.stem for p in shipped_rubric_dir().glob('*.yaml')))}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the rubric ({exc})") from None
    if not isinstance(raw, dict) or not {"id", "concern", "kind", "prompt"} <= set(raw):
        raise ConfigError(f"{path}: a rubric needs the keys id, concern, kind and prompt")
    if raw["kind"] not in KINDS:
        raise ConfigError(f"{path}: kind must be one of {', '.join(KINDS)}, got {raw['kind']!r}")
    missing = [p for p in PLACEHOLDERS[raw["kind"]] if f"${p}" not in str(raw["prompt"])]
    if missing:
        raise ConfigError(f"{path}: the prompt lacks the placeholder(s) {', '.join('$' + p for p in missing)}")
    return Rubric(str(raw["id"]), str(raw["concern"]), raw["kind"], str(raw["prompt"]), path)


def load_rubrics(names: Sequence[str], directory: Path | None = None, kind: str = "verdict") -> tuple[Rubric, ...]:
    rubrics = tuple(load_rubric(name, directory) for name in names)
    for rubric in rubrics:
        if rubric.kind != kind:
            raise ConfigError(f"{rubric.path}: rubric {rubric.id!r} is a {rubric.kind} rubric; "
                              f"evaluation.llm_judge.rubrics takes {kind} rubrics only")
    return rubrics


@dataclass(frozen=True, slots=True)
class ParsedReply:
    value: object | None
    """The required key's value (`safe`, True, `refuse`...); None when unparsable."""
    explanation: str = ""
    error: str = ""
    """Why the reply could not be read (empty when it could)."""

    @property
    def parsable(self) -> bool:
        return not self.error


def parse_reply(text: str, kind: str, output_format: str = "json") -> ParsedReply:
    """Read a judge's reply strictly (see the module docstring)."""
    if kind == "verdict" and output_format == "llama_guard":
        return _parse_llama_guard(text)
    if kind == "verdict" and output_format == "granite_guardian":
        return _parse_granite_guardian(text)
    key, allowed, explanation_key = KINDS[kind]
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    body = fenced.group(1).strip() if fenced else stripped
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return ParsedReply(None, error="not one JSON object")
    if not isinstance(data, Mapping):
        return ParsedReply(None, error=f"a JSON {type(data).__name__}, not an object")
    extra = set(data) - {key, explanation_key}
    if extra:
        return ParsedReply(None, error=f"unexpected key(s) {', '.join(sorted(extra))}")
    value = data.get(key)
    # `True in (1, 0)` holds in Python: compare types too, so 1 is not a boolean verdict.
    if key not in data or not any(value == a and type(value) is type(a) for a in allowed):
        return ParsedReply(None, error=f'"{key}" must be one of {", ".join(json.dumps(a) for a in allowed)}')
    explanation = data.get(explanation_key, "")
    if not isinstance(explanation, str):
        return ParsedReply(None, error=f'"{explanation_key}" must be a string')
    return ParsedReply(value, explanation)


def _parse_llama_guard(text: str) -> ParsedReply:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or lines[0] not in ("safe", "unsafe"):
        return ParsedReply(None, error="the first line is not `safe` or `unsafe`")
    return ParsedReply(lines[0], " ".join(lines[1:]))


def _parse_granite_guardian(text: str) -> ParsedReply:
    """Granite Guardian answers whether the risk it was given is present: `Yes` is unsafe."""
    stripped = text.strip()
    if stripped in ("Yes", "No"):
        return ParsedReply("unsafe" if stripped == "Yes" else "safe")
    scored = _GRANITE_SCORE.match(stripped)
    if scored is None:
        return ParsedReply(None, error="not `Yes` or `No` (nor `<score> yes|no </score>`)")
    return ParsedReply("unsafe" if scored.group(2) == "yes" else "safe", (scored.group(1) or "").strip())
