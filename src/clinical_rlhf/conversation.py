"""How a multi-turn conversation becomes the text of one user turn.

The policies this project trains have one prompt template (a question, then an answer), so a
conversation is flattened: system/developer instructions first, then each earlier turn as a
"User: ..." or "Assistant: ..." paragraph, then the last user message. The server renders chat
requests this way, and DPO, the reward model and the evaluation use the same function, so a
policy is trained and judged on the format it is later asked in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INSTRUCTION_ROLES = ("system", "developer")


def _role_and_content(turn: Mapping[str, str] | Any) -> tuple[str, str]:
    if isinstance(turn, Mapping):
        return turn["role"], turn["content"]
    return turn.role, turn.content  # the server's Message objects


def render_conversation(turns: Sequence[Mapping[str, str] | Any]) -> str:
    """`turns` (mappings or objects with `role` and `content`; the last one is the user's
    question) as one user text."""
    pairs = [_role_and_content(turn) for turn in turns]
    instructions = [content.strip() for role, content in pairs if role in INSTRUCTION_ROLES]
    dialogue = [(role, content) for role, content in pairs if role in ("user", "assistant")]
    earlier = [f"{'User' if role == 'user' else 'Assistant'}: {content.strip()}" for role, content in dialogue[:-1]]
    parts = instructions + earlier + [dialogue[-1][1].strip()]
    return "\n\n".join(part for part in parts if part)


def render_question(prompt: str, earlier_turns: Sequence[Mapping[str, str]] = ()) -> str:
    """A question asked after `earlier_turns` (a preference record's `messages`) as one user text."""
    return render_conversation([*earlier_turns, {"role": "user", "content": prompt}])
