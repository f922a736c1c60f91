"""What a conversation so far tells the guard about the person (`SafetyGuard.check_conversation`).

A conversation is a sequence of OpenAI-style messages, `{"role": "system" | "user" | "assistant",
"content": str}`, usually ending with a user turn; the new assistant answer is judged against:

- **User turns only.** The system prompt is the operator's and the assistant turns are the
  model's own words: neither is a fact about the person.
- **Drugs the person takes, conditions and ages** from every user turn count, as if all were said
  in one question ("I take warfarin" two turns ago still interacts with the ibuprofen okayed now).
  The **weight** is the latest one given (a correction wins).
- **Red flags** happening now in any user turn stay until a later user turn resolves them:
  it names the same emergency as negated or past ("I don't have chest pain any more", "the chest
  pain has gone", "the chest pain was last year"), or says in general that it is over ("that was
  last year", "it's gone now", "it went away", `lexicon.CONVERSATION_RESOLVED`,
  `CONVERSATION_PAST_REFERENCE`) without a cue that it is back or still there ("it came back",
  "still", "worse": `CONVERSATION_RECURRED`). A later turn that says it is back revives what was
  resolved; a turn with an emergency of its own adds it. Resolving is cue-based, like the rest of
  the guard, and the cautious reading wins: a cue that is negated ("it hasn't gone") resolves
  nothing, and a turn that both resolves and recurs keeps everything.

Content may be a string or a list of parts (`{"type": "text", "text": ...}`, as the OpenAI API
allows; other parts are skipped). Evidence spans refer to the user turns joined with newlines
(`joined`), which is also the question the audit log records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clinical_rlhf.safety import lexicon
from clinical_rlhf.safety.context import ContextReader, Tokenize, cue_index
from clinical_rlhf.safety.normalize import NormalisedText
from clinical_rlhf.safety.redflags import RedFlagDetector, RedFlagHit

if TYPE_CHECKING:
    from clinical_rlhf.safety.guard import SafetyGuard
    from clinical_rlhf.safety.verdict import SafetyVerdict

TURN_SEPARATOR = "\n"


def user_turns(messages: object) -> list[str]:
    """The text of every user turn, in order. Raises `TypeError` (a wrong type) or `ValueError`
    (a missing role or content) naming the first malformed message."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of {{\"role\", \"content\"}} objects, got {type(messages).__name__}")
    turns = []
    for number, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"message {number} must be an object with role and content, got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"message {number} needs a role (system, user or assistant)")
        content = message.get("content")
        if role != "user":
            continue
        if content is None:
            raise ValueError(f"message {number} (user) has no content; give the question as a string")
        turns.append(_text(content, number))
    return turns


def _text(content: object, number: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (str, bytes)):
        parts = []
        for part in content:
            if not isinstance(part, Mapping):
                raise TypeError(f"message {number}: a content part must be an object, got {type(part).__name__}")
            if part.get("type") == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise ValueError(f"message {number}: a text part needs a string `text`")
                parts.append(text)
        return TURN_SEPARATOR.join(parts)
    raise TypeError(f"message {number}: content must be a string or a list of text parts, "
                    f"got {type(content).__name__}")


def joined(turns: Sequence[str]) -> str:
    """The user turns as one text: the question flags point into and the audit log records."""
    return TURN_SEPARATOR.join(turns)


class ConversationReader:
    """Which red flags of the earlier turns are still open (see the module docstring)."""

    def __init__(self, detector: RedFlagDetector, context: ContextReader, tokenize: Tokenize) -> None:
        self.detector = detector
        self.context = context
        self.resolved = cue_index(lexicon.CONVERSATION_RESOLVED, tokenize)
        self.past_reference = cue_index(lexicon.CONVERSATION_PAST_REFERENCE, tokenize)
        self.recurred = cue_index(lexicon.CONVERSATION_RECURRED, tokenize)

    def open_flags(self, turns: Sequence[tuple[NormalisedText, Sequence[RedFlagHit]]]) -> list[RedFlagHit]:
        """The red flags still open after every turn: `turns` are (a user turn as read, its red
        flags happening now), in order. A flag is shown with the turn that first raised it."""
        open_: dict[str, RedFlagHit] = {}
        resolved: dict[str, RedFlagHit] = {}
        for text, hits in turns:
            recurred = self._says_recurred(text)
            if recurred:
                open_.update(resolved)
                resolved.clear()
            for flag_id in self.detector.named_as_over(text) & open_.keys():
                resolved[flag_id] = open_.pop(flag_id)
            if open_ and not recurred and self._says_over(text):
                resolved.update(open_)
                open_.clear()
            for hit in hits:
                flag_id = hit.flag.id
                if flag_id not in open_:
                    open_[flag_id] = resolved.pop(flag_id, hit)
        return list(open_.values())

    def _says_recurred(self, text: NormalisedText) -> bool:
        return any(not self.context.is_negated(text, start, end) for start, end, _ in text.find(self.recurred))

    def _says_over(self, text: NormalisedText) -> bool:
        """A general statement that the emergency is over: a resolution cue that is not negated,
        or a back-reference ("that was") with a history cue in its sentence."""
        if any(not self.context.is_negated(text, start, end) for start, end, _ in text.find(self.resolved)):
            return True
        return any(self.context.situation(text, start, end) == "history"
                   for start, end, _ in text.find(self.past_reference))


# ----------------------------------------------------------------------------- `safety-check --jsonl`


def jsonl_problem(item: object) -> str | None:
    """What is wrong with one `clinical-rlhf safety-check --jsonl` object, in words, or None. An
    object carries an optional `id`, either `prompt` (one question) or `messages` (the conversation
    so far), and `response` (the answer to check with `check` or `check_conversation`); without a
    `response` the question alone is triaged (`triage_jsonl_item`)."""
    if not isinstance(item, dict):
        return f"expected a JSON object with prompt (or messages) and response, got {type(item).__name__}"
    for key in ("prompt", "response"):
        if key in item and not isinstance(item[key], str):
            return f"`{key}` must be a string, got {type(item[key]).__name__}"
    if "prompt" not in item and "messages" not in item and "response" not in item:
        return "missing `prompt` (or `messages`) to triage a question, and `response` to check an answer"
    if "messages" in item:
        if "prompt" in item:
            return "give either `prompt` (one question) or `messages` (a conversation), not both"
        try:
            turns = user_turns(item["messages"])
        except (TypeError, ValueError) as exc:
            return f"`messages`: {exc}"
        if not turns and "response" not in item:
            return "`messages` has no user turn to triage; add one, or a `response` to check"
    return None


def check_jsonl_item(guard: SafetyGuard, item: Mapping[str, Any]) -> SafetyVerdict:
    """The verdict for one valid `safety-check --jsonl` object with a `response` (see `jsonl_problem`)."""
    if "messages" in item:
        return guard.check_conversation(item["messages"], item.get("response", ""))
    return guard.check(item.get("prompt", ""), item.get("response", ""))


def triage_jsonl_item(guard: SafetyGuard, item: Mapping[str, Any]) -> SafetyVerdict:
    """The question's own verdict, carrying its triage, for a valid object without a `response`."""
    if "messages" in item:
        return guard.check_conversation_prompt(item["messages"])
    return guard.check_prompt(item["prompt"])
