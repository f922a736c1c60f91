"""What an evaluation asks: single questions and multi-turn conversations, and how each is
shown to the policy, the guard and the reward.

A conversation is OpenAI-style turns ending with the user's question. The policy sees it as
the server renders it (`clinical_rlhf.conversation.render_conversation`: instructions and
earlier turns as "User: ..." / "Assistant: ..." lines in one templated user turn), so an
evaluation measures the model as it is served. The guard checks an answer against the whole
conversation (`SafetyGuard.check_conversation`), so a red flag stated two turns ago still
needs emergency advice; the reward reads every user turn as the question.

Prompt files (`--prompts`) hold one JSON object per line:

    {"prompt": "Can I take ibuprofen with warfarin?"}                 a single question
    {"messages": [{"role": "user", "content": "..."}, ...]}           a conversation ending with a user turn
    {"prompt": "...", "messages": [...earlier turns]}                 the preference-file convention
    optional: "id" (a string; default `line-<n>`)

This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clinical_rlhf.conversation import render_conversation
from clinical_rlhf.corpus.jsonl import prompt_file_records
from clinical_rlhf.errors import InputDataError

ROLES = ("system", "user", "assistant")
_FORMAT_HINT = ('each line must be a JSON object with "prompt" (a question) or "messages" (a list of '
                '{"role", "content"} turns ending with the user\'s question); see docs/evaluation.md')


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One question of an evaluation, with the turns before it."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    """The whole conversation, oldest first, ending with the user's question."""
    source: str
    """`heldout` (the demo corpus or `training.eval_prompts`), `file` (`--prompts`) or `conversation`."""
    red_flag: str | None = None
    """Conversation set: the red flag an earlier user turn states (or denies)."""
    negated: bool = False
    """Conversation set: the earlier turn denies the red flag, so no emergency advice is owed."""

    @classmethod
    def single(cls, id: str, prompt: str, source: str) -> EvalItem:
        return cls(id=id, messages=({"role": "user", "content": prompt},), source=source)

    @property
    def question(self) -> str:
        return self.messages[-1]["content"]

    @property
    def is_conversation(self) -> bool:
        return len(self.messages) > 1

    @property
    def policy_text(self) -> str:
        """What the policy is asked (the user text its prompt template wraps)."""
        return render_conversation(self.messages) if self.is_conversation else self.question

    @property
    def reward_prompt(self) -> str:
        """What the reward reads as the question: every user turn, oldest first."""
        return "\n".join(turn["content"] for turn in self.messages if turn["role"] == "user")

    def verdict(self, guard, response: str):
        """The guard's verdict on `response`, against the whole conversation when there is one."""
        if self.is_conversation:
            return guard.check_conversation([dict(turn) for turn in self.messages], response)
        return guard.check(self.question, response)

    def to_dict(self) -> dict[str, object]:
        record: dict[str, object] = {"id": self.id, "source": self.source, "question": self.question}
        if self.is_conversation:
            record["messages"] = [dict(turn) for turn in self.messages]
        if self.red_flag is not None:
            record["red_flag"] = self.red_flag
            record["negated"] = self.negated
        return record




# ----------------------------------------------------------------------------- prompt files


def _turns(value: object, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list):
        raise InputDataError(f'{where}: "messages" must be a list of {{"role", "content"}} objects; {_FORMAT_HINT}')
    turns = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or not {"role", "content"} <= set(turn):
            raise InputDataError(f'{where}: "messages[{index}]" must be an object with "role" and "content"')
        if turn["role"] not in ROLES:
            raise InputDataError(f'{where}: "messages[{index}].role" must be one of {", ".join(ROLES)}, '
                                 f'got {turn["role"]!r}')
        if not isinstance(turn["content"], str):
            raise InputDataError(f'{where}: "messages[{index}].content" must be a string')
        turns.append({"role": turn["role"], "content": turn["content"]})
    return tuple(turns)


def parse_item(record: dict, where: str, default_id: str) -> EvalItem:
    """One decoded line of a prompt file (`where` = "file:line" for the error message)."""
    if "prompt" not in record and "messages" not in record:
        raise InputDataError(f'{where}: no "prompt" or "messages" key; {_FORMAT_HINT}')
    turns = _turns(record["messages"], where) if "messages" in record else ()
    if "prompt" in record:
        prompt = record["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputDataError(f'{where}: "prompt" must be a non-empty string; {_FORMAT_HINT}')
        turns = (*turns, {"role": "user", "content": prompt})
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise InputDataError(f'{where}: the conversation must end with a non-empty user turn (the question '
                             f'the policy answers); {_FORMAT_HINT}')
    item_id = record.get("id", default_id)
    if not isinstance(item_id, str) or not item_id:
        raise InputDataError(f'{where}: "id" must be a non-empty string when given')
    return EvalItem(id=item_id, messages=turns, source="file")


def load_items_jsonl(path: str | Path) -> list[EvalItem]:
    """Every non-blank line of a prompt file as an `EvalItem`, in file order: the format of
    `training.eval_prompts` (read by the corpus's `prompt_file_records`, with its checks and
    messages), extended by `messages` lines (conversations) and optional ids. Every problem
    names the file and line."""
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for where, number, record in prompt_file_records(path, _FORMAT_HINT):
        item = parse_item(record, where, f"line-{number}")
        if item.id in seen:
            raise InputDataError(f"{where}: duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = number
        items.append(item)
    if not items:
        raise InputDataError(f"{path}: the file holds no prompts; {_FORMAT_HINT}")
    return items
