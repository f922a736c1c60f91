"""Reading prompt files: one JSON object with a `prompt` string per line.

This is the format of `training.prompts` and `training.eval_prompts`, so a user's own file
comes through here; every problem is reported with the file and the line that has it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from clinical_rlhf.errors import InputDataError

_FORMAT_HINT = 'each line must be a JSON object like {"prompt": "..."}'


def prompt_file_records(path: str | Path, hint: str = _FORMAT_HINT) -> Iterator[tuple[str, int, dict]]:
    """(`file:line`, line number, object) for every non-blank line of prompt file `path`.

    The reading shared by every prompt-file format (`load_prompts_jsonl`, and the evaluation's
    items with conversations and ids): `InputDataError` naming the file, or the file and line,
    when it is missing or unreadable, or a line is not valid JSON or not an object (`hint` says
    what a line should look like).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputDataError(f"{path}: prompt file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{path}: cannot read the prompt file as UTF-8 text ({exc})") from None
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"{where}: not valid JSON ({exc.msg}); {hint}") from None
        if not isinstance(record, dict):
            raise InputDataError(f"{where}: found a JSON {type(record).__name__}, not an object; {hint}")
        yield where, line_number, record


def load_prompts_jsonl(path: str | Path) -> list[str]:
    """Return the `prompt` of every non-blank line of `path`, in file order.

    Raises `InputDataError` naming the file (and line) when the file is missing or unreadable,
    a line is not valid JSON, not an object, lacks `prompt`, or its prompt is not a non-empty
    string; and when the file holds no prompt at all. Other keys on a line are ignored, so the
    corpus's own split files load as they are.
    """
    prompts: list[str] = []
    for where, _, record in prompt_file_records(path):
        if "prompt" not in record:
            raise InputDataError(f"{where}: no \"prompt\" key; {_FORMAT_HINT}")
        prompt = record["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputDataError(f"{where}: \"prompt\" must be a non-empty string; {_FORMAT_HINT}")
        prompts.append(prompt)

    if not prompts:
        raise InputDataError(f"{path}: the file holds no prompts; {_FORMAT_HINT}")
    return prompts
