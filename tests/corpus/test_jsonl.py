"""Writing the splits as JSONL and reading prompt files back, with errors that name the line."""

from __future__ import annotations

import json

import pytest

from clinical_rlhf.corpus import build_corpus, load_prompts_jsonl
from clinical_rlhf.errors import InputDataError


@pytest.fixture(scope="module")
def small_corpus():
    return build_corpus(size=200, seed=3)


def test_write_jsonl_round_trips_every_field(small_corpus, tmp_path):
    paths = small_corpus.write_jsonl(tmp_path / "out")
    train_path, heldout_path = paths
    assert (train_path.name, heldout_path.name) == ("train.jsonl", "heldout.jsonl")
    records = [json.loads(line) for line in train_path.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [e.id for e in small_corpus.train]
    assert records[0] == small_corpus.train[0].to_dict()
    assert not list((tmp_path / "out").glob("*.partial"))


def test_written_splits_load_as_prompt_files(small_corpus, tmp_path):
    paths = small_corpus.write_jsonl(tmp_path)
    assert load_prompts_jsonl(paths.train) == [e.prompt for e in small_corpus.train]
    assert load_prompts_jsonl(paths.heldout) == [e.prompt for e in small_corpus.heldout]


def test_blank_lines_and_extra_keys_are_accepted(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "first", "source": "x"}\n\n   \n{"prompt": "second"}\n', encoding="utf-8")
    assert load_prompts_jsonl(path) == ["first", "second"]


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ('{"prompt": "ok"}\n{"prompt": "broken"\n', 2, "not valid JSON"),
        ('{"prompt": "ok"}\n["a list"]\n', 2, "not an object"),
        ('{"text": "no prompt key"}\n', 1, 'no "prompt" key'),
        ('{"prompt": "ok"}\n{"prompt": 42}\n', 2, "non-empty string"),
        ('{"prompt": "ok"}\n\n{"prompt": "   "}\n', 3, "non-empty string"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, content, line, words):
    path = tmp_path / "prompts.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputDataError) as raised:
        load_prompts_jsonl(path)
    message = str(raised.value)
    assert f"{path}:{line}:" in message and words in message
    assert '{"prompt": "..."}' in message


def test_missing_and_empty_files_are_reported(tmp_path):
    with pytest.raises(InputDataError, match="not found"):
        load_prompts_jsonl(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="no prompts"):
        load_prompts_jsonl(empty)


def test_binary_file_is_reported_not_raised_from_the_decoder(tmp_path):
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputDataError, match="UTF-8"):
        load_prompts_jsonl(path)
