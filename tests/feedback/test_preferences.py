"""The expert preference format (feedback/preferences.py): valid and invalid lines, the one error
listing every bad line, writing, and appends from several processes at once."""

import json
import multiprocessing

import pytest

from clinical_rlhf.errors import InputDataError
from clinical_rlhf.feedback import (
    LineError,
    PreferenceRecord,
    append_preference,
    decisive,
    iter_preferences,
    load_preferences,
    parse_preference,
    write_preferences,
)

GOOD = {"id": "p1", "prompt": "Can I take ibuprofen with warfarin?", "answer_a": "Please ask your pharmacist first.",
        "answer_b": "Yes, that is fine.", "preferred": "a", "annotator": "dr-1"}


def line(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def write(tmp_path, *lines, name="prefs.jsonl", end="\n"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def test_full_record_round_trips_and_exposes_chosen_rejected(tmp_path):
    full = {**GOOD, "rationale": "B okays a bleeding risk", "objectives": {"safety": "a", "coherence": "tie"},
            "messages": [{"role": "system", "content": "Be careful."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello, how can I help?"}],
            "source": "feedback", "completion_id": "chatcmpl-1", "created": "2026-11-25T10:00:00Z"}
    record = parse_preference(full)
    assert record.chosen == GOOD["answer_a"] and record.rejected == GOOD["answer_b"] and not record.is_tie
    assert record.conversation()[-1] == {"role": "user", "content": GOOD["prompt"]}
    assert len(record.conversation()) == 4
    path = write_preferences(tmp_path / "out.jsonl", [record])
    assert json.loads(path.read_text()) == full
    assert load_preferences(path) == [record]


def test_optional_fields_left_unset_are_omitted_when_written(tmp_path):
    path = write_preferences(tmp_path / "out.jsonl", [parse_preference(GOOD)])
    assert json.loads(path.read_text()) == GOOD


def test_tie_is_kept_but_has_no_winner():
    tie = parse_preference({**GOOD, "preferred": "tie"})
    assert tie.is_tie and decisive([tie, parse_preference(GOOD)]) == [parse_preference(GOOD)]
    with pytest.raises(ValueError, match="is a tie"):
        _ = tie.chosen
    with pytest.raises(ValueError, match="is a tie"):
        _ = tie.rejected


@pytest.mark.parametrize(("bad", "message"), [
    ("{not json", "not valid JSON"),
    ('["a list"]', "found a JSON list, not an object"),
    (line(annotator=...), "missing 'annotator'"),
    (line(reviewer="x"), "unknown key 'reviewer'"),
    (line(preferred="A"), '"preferred" must be one of a, b, tie'),
    (line(answer_b=GOOD["answer_a"]), "are the same text"),
    (line(prompt="  "), '"prompt" must be a non-empty string'),
    (line(id=7), '"id" must be a non-empty string'),
    (line(rationale=3), '"rationale" must be a string'),
    (line(objectives={"empathy": "a"}), "unknown objective 'empathy'"),
    (line(objectives={"safety": "yes"}), '"objectives.safety" must be one of'),
    (line(objectives=["safety"]), '"objectives" must be an object'),
    (line(messages={"role": "user"}), '"messages" must be a list'),
    (line(messages=[{"role": "doctor", "content": "x"}]), '"messages[0].role" must be one of'),
    (line(messages=[{"role": "user"}]), '"messages[0]" must be an object with exactly'),
    (line(messages=[{"role": "user", "content": 5}]), '"messages[0].content" must be a string'),
])
def test_each_invalid_line_is_named_with_file_line_and_reason(tmp_path, bad, message):
    path = write(tmp_path, line(), bad)
    with pytest.raises(InputDataError) as caught:
        load_preferences(path)
    text = str(caught.value)
    assert f"{path}:2: " in text and message in text and "docs/feedback.md" in text


def test_every_bad_line_is_reported_in_one_error_with_its_number(tmp_path):
    path = write(tmp_path, line(id="a"), "{broken", line(id="b", preferred="c"), "", line(id="a"), line(id="c"))
    with pytest.raises(InputDataError) as caught:
        load_preferences(path)
    text = str(caught.value)
    assert "3 bad line(s)" in text
    assert f"{path}:2: not valid JSON" in text
    assert f"{path}:3: \"preferred\"" in text
    assert f"{path}:5: duplicate id 'a' (first on line 1)" in text
    items = list(iter_preferences(path))  # the good lines are still there, in order
    assert [i.line if isinstance(i, LineError) else i.id for i in items] == ["a", 2, 3, 5, "c"]


def test_more_than_ten_bad_lines_are_counted_not_all_shown(tmp_path):
    path = write(tmp_path, *[f"bad {i}" for i in range(13)])
    with pytest.raises(InputDataError, match=r"13 bad line\(s\).*\(and 3 more\)"):
        load_preferences(path)


def test_torn_last_line_is_reported(tmp_path):
    whole = line(id="x")
    path = write(tmp_path, line(), whole[:len(whole) // 2], end="")
    with pytest.raises(InputDataError, match=rf"{path.name}:2: not valid JSON"):
        load_preferences(path)


def test_missing_empty_and_non_utf8_files_are_one_clear_error(tmp_path):
    with pytest.raises(InputDataError, match="preference file not found"):
        load_preferences(tmp_path / "nope.jsonl")
    empty = write(tmp_path, "", name="empty.jsonl")
    with pytest.raises(InputDataError, match="holds no preferences"):
        load_preferences(empty)
    assert load_preferences(empty, allow_empty=True) == []
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(line().encode() + b"\n\xe9\xff\n")
    with pytest.raises(InputDataError, match="not UTF-8"):
        load_preferences(binary)


def test_append_after_a_torn_line_starts_a_new_line(tmp_path):
    path = write(tmp_path, line(id="a"), '{"id": "torn', end="")
    append_preference(path, parse_preference({**GOOD, "id": "b"}))
    items = list(iter_preferences(path))
    assert [type(i).__name__ for i in items] == ["PreferenceRecord", "LineError", "PreferenceRecord"]
    assert items[1].line == 2 and items[2].id == "b"


def _append_many(path: str, worker: int, count: int) -> None:
    long_rationale = "x" * 5000  # longer than a pipe buffer's atomic write: only the lock keeps lines whole
    for index in range(count):
        record = PreferenceRecord(id=f"w{worker}-{index}", prompt="p", answer_a="a", answer_b="b", preferred="a",
                                  annotator=f"worker-{worker}", rationale=long_rationale)
        append_preference(path, record, fsync=False)


def test_concurrent_appends_from_several_processes_keep_whole_lines(tmp_path):
    path = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), worker, 40)) for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    records = load_preferences(path)
    assert len(records) == 160 and len({r.id for r in records}) == 160
    for worker in range(4):  # each worker's lines keep their order
        own = [int(r.id.split("-")[1]) for r in records if r.annotator == f"worker-{worker}"]
        assert own == list(range(40))
