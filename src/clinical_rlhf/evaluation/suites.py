"""External evaluation suites, read from the user's own files (nothing is downloaded).

`evaluate --suite FORMAT:PATH`; every format is JSONL, one case per line:

    healthbench  {"prompt": [{"role", "content"}, ...], "rubrics": [{"criterion": str, "points": number,
                  "tags": [...]}, ...], "prompt_id": str, "example_tags": [...]}
                 a conversation ending with the user's turn, graded by the llm judge against
                 physician-written rubric items (negative points for undesirable behaviour)
    medsafety    {"request": str, "category": str, "id": str}
                 a harmful medical request: a refusal or a safe redirection is expected
    cares        {"prompt": str, "label": "accept" | "caution" | "refuse", "category": str, "id": str}
                 a prompt labelled with the response it deserves: over-refusal and unsafe
                 compliance both count

Each loader checks its format and names the file and line of the first problem; the suite
carries the file's SHA-256, so a result says exactly what it was measured on. This module
imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clinical_rlhf.corpus.jsonl import prompt_file_records
from clinical_rlhf.durable import sha256_file
from clinical_rlhf.errors import InputDataError
from clinical_rlhf.evaluation.items import EvalItem, parse_item

FORMATS = ("healthbench", "medsafety", "cares")
CARES_LABELS = ("accept", "caution", "refuse")
_HINTS = {
    "healthbench": 'each line: {"prompt": [{"role": "user", "content": "..."}], "rubrics": [{"criterion": "...", '
                   '"points": 5}], "prompt_id": "..."} (HealthBench format)',
    "medsafety": 'each line: {"request": "...", "category": "..."} (a harmful medical request)',
    "cares": 'each line: {"prompt": "...", "label": "accept" | "caution" | "refuse"}',
}


@dataclass(frozen=True, slots=True)
class SuiteCase:
    item: EvalItem
    rubric_items: tuple[Mapping[str, object], ...] = ()
    """healthbench: `{"criterion", "points", "tags"}` per rubric item."""
    category: str | None = None
    label: str | None = None
    """cares: the expected response."""


@dataclass(frozen=True)
class Suite:
    format: str
    path: Path
    sha256: str
    cases: tuple[SuiteCase, ...] = field(repr=False)

    @property
    def items(self) -> list[EvalItem]:
        return [case.item for case in self.cases]

    def describe(self) -> dict[str, object]:
        return {"format": self.format, "path": str(self.path), "sha256": self.sha256, "cases": len(self.cases)}


def parse_suite_spec(spec: str) -> tuple[str, Path]:
    """`FORMAT:PATH` -> (format, path), with a clear error for a mistyped one."""
    kind, separator, path = spec.partition(":")
    if not separator or kind not in FORMATS or not path:
        raise InputDataError(f"--suite {spec!r}: expected FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}, "
                             f"e.g. --suite healthbench:data/healthbench.jsonl")
    return kind, Path(path)


def _text(record: dict, key: str, where: str, hint: str, required: bool = True) -> str | None:
    value = record.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputDataError(f'{where}: "{key}" must be a non-empty string; {hint}')
    return value


def _healthbench(record: dict, where: str, number: int) -> SuiteCase:
    hint = _HINTS["healthbench"]
    if not isinstance(record.get("prompt"), list):
        raise InputDataError(f'{where}: "prompt" must be a list of {{"role", "content"}} turns; {hint}')
    case_id = _text(record, "prompt_id", where, hint, required=False) or f"line-{number}"
    item = parse_item({"messages": record["prompt"], "id": case_id}, where, case_id)
    rubrics = record.get("rubrics")
    if not isinstance(rubrics, list) or not rubrics:
        raise InputDataError(f'{where}: "rubrics" must be a non-empty list of {{"criterion", "points"}}; {hint}')
    parsed = []
    for index, rubric in enumerate(rubrics):
        if not isinstance(rubric, dict):
            raise InputDataError(f'{where}: "rubrics[{index}]" must be an object; {hint}')
        criterion = _text(rubric, "criterion", f"{where} rubrics[{index}]", hint)
        points = rubric.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points == 0:
            raise InputDataError(f'{where}: "rubrics[{index}].points" must be a non-zero number; {hint}')
        tags = rubric.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InputDataError(f'{where}: "rubrics[{index}].tags" must be a list of strings')
        parsed.append({"criterion": criterion, "points": float(points), "tags": list(tags)})
    if not any(r["points"] > 0 for r in parsed):
        raise InputDataError(f"{where}: no rubric item with positive points, so no score is possible; {hint}")
    return SuiteCase(_with_source(item, "suite:healthbench"), tuple(parsed))


def _medsafety(record: dict, where: str, number: int) -> SuiteCase:
    hint = _HINTS["medsafety"]
    request = _text(record, "request", where, hint)
    category = _text(record, "category", where, hint)
    case_id = _text(record, "id", where, hint, required=False) or f"line-{number}"
    return SuiteCase(EvalItem.single(case_id, request, "suite:medsafety"), category=category)


def _cares(record: dict, where: str, number: int) -> SuiteCase:
    hint = _HINTS["cares"]
    prompt = _text(record, "prompt", where, hint)
    label = record.get("label")
    if label not in CARES_LABELS:
        raise InputDataError(f'{where}: "label" must be one of {", ".join(CARES_LABELS)}, got {label!r}; {hint}')
    category = _text(record, "category", where, hint, required=False)
    case_id = _text(record, "id", where, hint, required=False) or f"line-{number}"
    return SuiteCase(EvalItem.single(case_id, prompt, "suite:cares"), category=category, label=label)


def _with_source(item: EvalItem, source: str) -> EvalItem:
    return EvalItem(id=item.id, messages=item.messages, source=source)


_READERS = {"healthbench": _healthbench, "medsafety": _medsafety, "cares": _cares}


def load_suite(kind: str, path: str | Path) -> Suite:
    """Read and check a suite file of format `kind` (see the module docstring)."""
    if kind not in FORMATS:
        raise InputDataError(f"unknown suite format {kind!r}; choose among {', '.join(FORMATS)}")
    path = Path(path)
    cases: list[SuiteCase] = []
    seen: dict[str, int] = {}
    for where, number, record in prompt_file_records(path, _HINTS[kind]):
        case = _READERS[kind](record, where, number)
        if case.item.id in seen:
            raise InputDataError(f"{where}: duplicate id {case.item.id!r} (first on line {seen[case.item.id]})")
        seen[case.item.id] = number
        cases.append(case)
    if not cases:
        raise InputDataError(f"{path}: the suite holds no cases; {_HINTS[kind]}")
    return Suite(kind, path, sha256_file(path), tuple(cases))
