"""The written rubrics load and fill in; judge replies are read strictly, and nothing that is not
a well-formed verdict is read as one."""

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.evaluation.rubrics import load_rubric, load_rubrics, parse_reply, shipped_rubric_dir

CONCERNS = ("under_triage", "harmful_compliance", "dosing_error", "unsafe_interaction_advice",
            "missing_safety_net", "hallucinated_fact")


def test_one_rubric_file_per_concern_and_for_each_suite():
    rubrics = load_rubrics(CONCERNS)
    assert [r.id for r in rubrics] == list(CONCERNS)
    assert len({r.sha256 for r in rubrics}) == 6
    for name, kind in (("rubric_criterion", "criterion"), ("harmful_request", "response_type"),
                       ("response_type", "response_type")):
        assert load_rubric(name).kind == kind
    filled = load_rubric("rubric_criterion").render("User: hi", "Hello.", "Greets the user.")
    assert "User: hi" in filled and "Hello." in filled and "Greets the user." in filled and "$" not in filled


@pytest.mark.parametrize("reply, value", [
    ('{"verdict": "unsafe", "reason": "sends a stroke home"}', "unsafe"),
    ('  {"verdict": "safe"}\n', "safe"),
    ('```json\n{"verdict": "safe", "reason": "ok"}\n```', "safe"),
])
def test_well_formed_verdicts_are_read(reply, value):
    parsed = parse_reply(reply, "verdict")
    assert parsed.parsable and parsed.value == value


@pytest.mark.parametrize("reply", [
    "safe",                                                       # not JSON
    'The answer is fine. {"verdict": "safe"}',                    # prose around the object
    '{"verdict": "Safe"}',                                        # not an allowed value
    '{"verdict": "safe", "score": 1}',                            # a key the rubric did not ask for
    '{"reason": "fine"}',                                         # no verdict
    '["safe"]',                                                   # not an object
    '{"verdict": "safe", "reason": 3}',                           # reason not a string
    '{"verdict": "safe"} {"verdict": "unsafe"}',                  # two objects
    "",
])
def test_garbage_is_unparsable_never_safe(reply):
    parsed = parse_reply(reply, "verdict")
    assert not parsed.parsable and parsed.value is None and parsed.error


def test_criterion_needs_a_real_boolean_and_response_type_its_three_values():
    assert parse_reply('{"criteria_met": true, "explanation": "yes"}', "criterion").value is True
    assert not parse_reply('{"criteria_met": 1}', "criterion").parsable
    assert not parse_reply('{"criteria_met": "true"}', "criterion").parsable
    assert parse_reply('{"response": "caution", "reason": "warns"}', "response_type").value == "caution"
    assert not parse_reply('{"response": "partial"}', "response_type").parsable


def test_llama_guard_replies():
    assert parse_reply("unsafe\nS6", "verdict", "llama_guard").value == "unsafe"
    assert parse_reply("\nsafe\n", "verdict", "llama_guard").value == "safe"
    for garbage in ("The answer is safe", "SAFE", ""):
        assert not parse_reply(garbage, "verdict", "llama_guard").parsable


def test_granite_guardian_replies():
    assert parse_reply("Yes", "verdict", "granite_guardian").value == "unsafe"  # the risk is present
    assert parse_reply(" No\n", "verdict", "granite_guardian").value == "safe"
    scored = parse_reply("<think>It advises 8 g a day.</think>\n<score> yes </score>", "verdict", "granite_guardian")
    assert scored.value == "unsafe" and scored.explanation == "It advises 8 g a day."
    assert parse_reply("<score> no </score>", "verdict", "granite_guardian").value == "safe"
    for garbage in ("yes", "No risk", "Yes.", "<score> maybe </score>", "Yes\nNo", ""):
        assert not parse_reply(garbage, "verdict", "granite_guardian").parsable, garbage


def test_rubric_files_are_checked(tmp_path):
    (tmp_path / "under_triage.yaml").write_text("id: under_triage\nconcern: mine\nkind: verdict\nprompt: no holes\n")
    with pytest.raises(ConfigError, match=r"under_triage.yaml: the prompt lacks the placeholder\(s\) \$conversation"):
        load_rubric("under_triage", tmp_path)
    (tmp_path / "mine.yaml").write_text("id: mine\nconcern: x\nkind: score\nprompt: $conversation $answer\n")
    with pytest.raises(ConfigError, match="kind must be one of"):
        load_rubric("mine", tmp_path)
    with pytest.raises(ConfigError, match="no rubric 'nonexistent'"):
        load_rubric("nonexistent")
    with pytest.raises(ConfigError, match="takes verdict rubrics only"):
        load_rubrics(["rubric_criterion"])
    # a user's file replaces the shipped one of the same name, and changes the hash
    (tmp_path / "dosing_error.yaml").write_text(
        (shipped_rubric_dir() / "dosing_error.yaml").read_text().replace("clinical pharmacist", "pharmacologist"))
    assert load_rubric("dosing_error", tmp_path).sha256 != load_rubric("dosing_error").sha256
