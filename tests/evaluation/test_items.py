"""Prompt files with questions and conversations, and how a conversation is shown to the policy."""

import json

import pytest

from clinical_rlhf.errors import InputDataError
from clinical_rlhf.evaluation.items import (
    EvalItem,
    load_items_jsonl,
    render_conversation,
)

TURNS = [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": "I have had chest pain since lunch."},
         {"role": "assistant", "content": "Thanks for telling me."},
         {"role": "user", "content": "How much water should I drink?"}]


def write_lines(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_prompt_file_with_questions_and_conversations(tmp_path):
    path = write_lines(tmp_path / "prompts.jsonl", [
        {"prompt": "Can I take ibuprofen with warfarin?"},
        "",
        {"id": "talk", "messages": TURNS},
        {"prompt": "And paracetamol?", "messages": TURNS[1:3]},
    ])
    single, talk, preference_style = load_items_jsonl(path)
    assert single.id == "line-1" and not single.is_conversation and single.policy_text == single.question
    assert talk.id == "talk" and talk.is_conversation and talk.question == "How much water should I drink?"
    assert talk.reward_prompt == "I have had chest pain since lunch.\nHow much water should I drink?"
    assert preference_style.question == "And paracetamol?" and len(preference_style.messages) == 3
    assert all(item.source == "file" for item in (single, talk, preference_style))


@pytest.mark.parametrize("line, message", [
    ("{not json", "prompts.jsonl:2: not valid JSON"),
    ('["a list"]', "prompts.jsonl:2: found a JSON list"),
    ('{"question": "x"}', 'prompts.jsonl:2: no "prompt" or "messages" key'),
    ('{"prompt": "  "}', '"prompt" must be a non-empty string'),
    ('{"messages": [{"role": "doctor", "content": "x"}]}', 'messages[0].role" must be one of'),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
     "must end with a non-empty user turn"),
    ('{"id": "line-1", "prompt": "again"}', "duplicate id 'line-1' (first on line 1)"),
])
def test_bad_prompt_lines_name_the_file_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "prompts.jsonl", [{"prompt": "fine"}, line])
    with pytest.raises(InputDataError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_items_jsonl(path)


def test_missing_and_empty_prompt_files(tmp_path):
    with pytest.raises(InputDataError, match="prompt file not found"):
        load_items_jsonl(tmp_path / "absent.jsonl")
    with pytest.raises(InputDataError, match="holds no prompts"):
        load_items_jsonl(write_lines(tmp_path / "empty.jsonl", [""]))


def test_conversations_are_rendered_as_the_server_renders_them():
    pytest.importorskip("fastapi")  # the server's renderer lives in the `serve` extra
    from clinical_rlhf.serve.backends.base import Message
    from clinical_rlhf.serve.backends.local import render_chat

    assert render_conversation(TURNS) == render_chat(tuple(Message(t["role"], t["content"]) for t in TURNS))
    assert render_conversation(TURNS).endswith("Assistant: Thanks for telling me.\n\nHow much water should I drink?")
    item = EvalItem.single("q", "Just one question?", "file")
    assert item.policy_text == "Just one question?" and item.reward_prompt == "Just one question?"
