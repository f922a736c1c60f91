"""The guideline knowledge file: content, validation errors that name file and entry, and the
fast matcher against the naive definition."""

import re
from pathlib import Path

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.guidelines import (
    GuidelineMatcher,
    canonical_prompt,
    load_guidelines,
    load_phrase_sets,
    match_guidelines,
    phrase_regex,
)
from clinical_rlhf.reward.evaluation import load_hallucination_set, load_ordering_set


def test_shipped_file_has_at_least_40_sourced_statements_with_unique_ids():
    guidelines = load_guidelines()
    assert len(guidelines) >= 40
    assert len({g.id for g in guidelines}) == len(guidelines)
    for g in guidelines:
        assert g.source.strip() and g.presentation.strip() and g.triggers
        assert g.must_advise or g.must_not
    urgencies = {g.urgency for g in guidelines}
    assert urgencies == {"emergency", "urgent", "routine", "self_care"}


def test_cached_and_phrase_sets_present():
    assert load_guidelines() is load_guidelines()
    sets = load_phrase_sets()
    for name in ("emergency_now", "urgent_care", "routine_referral", "false_reassurance", "immediacy"):
        assert sets[name]


@pytest.mark.parametrize("prompt, expected", [
    ("I have crushing chest pain and sweating", {"chest_pain_acs"}),
    ("My dad has pain in his chest spreading to his arm", {"chest_pain_acs"}),  # possessive folded
    ("My 6-week-old baby has a fever of 38.2", {"infant_fever_under_3_months"}),
    ("My 3 year old has a fever", {"fever_child"}),  # context decides which fever statement
    ("I've got a cold, do I need antibiotics?", {"common_cold"}),
    ("worst headache of my life, came on suddenly", {"red_flag_headache"}),  # supersedes tension
    ("I get a headache most afternoons", {"tension_headache"}),
    ("his lips and tongue are swelling after a peanut", {"anaphylaxis"}),  # "a + b" trigger
    ("What is the capital of France?", set()),
])
def test_match_examples(prompt, expected):
    assert {g.id for g in match_guidelines(prompt)} == expected


def _naive_match(guidelines, prompt):
    text = canonical_prompt(prompt)

    def occurs(phrase):
        return re.search(phrase_regex([phrase]), text) is not None

    matched = [g for g in guidelines
               if any(all(occurs(part) for part in t.split(" + ")) for t in g.triggers)
               and (not g.context or any(occurs(c) for c in g.context))]
    dropped = {s for g in matched for s in g.supersedes}
    return tuple(g.id for g in matched if g.id not in dropped)


def test_matcher_equals_naive_definition_on_every_labelled_prompt():
    guidelines = load_guidelines()
    matcher = GuidelineMatcher(guidelines)
    prompts = {s.prompt for s in load_ordering_set()} | {i.prompt for i in load_hallucination_set()}
    assert len(prompts) > 150
    matched_any = 0
    for prompt in prompts:
        fast = tuple(g.id for g in matcher.match(prompt))
        assert fast == _naive_match(guidelines, prompt), prompt
        matched_any += bool(fast)
    assert matched_any > 60


def test_phrase_regex_prefers_longest_and_respects_word_boundaries():
    rx = re.compile(phrase_regex(["call 999", "call 999 now", "antibiotic*", "call"]))
    found = [m.group(0) for m in rx.finditer("recall: call 999 now, antibiotics; call them")]
    assert found == ["call 999 now", "antibiotics", "call"]


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "guidelines.yaml").write_text(body, encoding="utf-8")
    return tmp_path


GOOD_ENTRY = """
  - id: g1
    presentation: Something
    triggers: [thing]
    urgency: routine
    must_advise:
      - {id: a1, description: Do it, phrases: [do it]}
    source: NICE X
"""


@pytest.mark.parametrize("body, fragment", [
    ("guidelines:" + GOOD_ENTRY.replace("urgency: routine", "urgency: soon"), "(g1)"),
    ("guidelines:" + GOOD_ENTRY.replace("source: NICE X", "sauce: NICE X"), "unknown key"),
    ("guidelines:" + GOOD_ENTRY + GOOD_ENTRY, "duplicate id"),
    ("guidelines:" + GOOD_ENTRY.replace("phrases: [do it]", "phrase_sets: [nope]"), "unknown phrase set"),
    ("guidelines:" + GOOD_ENTRY.replace("phrases: [do it]", "phrases: ['do (it)']"), "not plain text"),
    ("guidelines:" + GOOD_ENTRY.replace("    source: NICE X\n", ""), "`source`"),
    ("guidelines: [oops", "not valid YAML"),
    ("other: []", "`guidelines:` list"),
])
def test_bad_files_raise_config_error_naming_file_and_entry(tmp_path, body, fragment):
    from clinical_rlhf.knowledge.guidelines import _parse

    path = _write(tmp_path, body) / "guidelines.yaml"
    with pytest.raises(ConfigError) as error:
        _parse(path)
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_directory_without_guidelines_falls_back_to_shipped(tmp_path):
    assert load_guidelines(tmp_path) == load_guidelines()


def test_directory_with_guidelines_is_used(tmp_path):
    _write(tmp_path, "guidelines:" + GOOD_ENTRY)
    loaded = load_guidelines(tmp_path)
    assert [g.id for g in loaded] == ["g1"]
    assert [g.id for g in match_guidelines("a thing happened", tmp_path)] == ["g1"]
