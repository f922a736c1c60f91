"""The guideline knowledge file: content, validation errors that name file and entry, and the
fast matcher against the naive definition."""

import functools
import re
from pathlib import Path

import pytest

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.knowledge.guidelines import (
    GuidelineMatcher,
    PromptReading,
    canonical_prompt,
    load_guidelines,
    load_phrase_sets,
    match_guidelines,
    phrase_regex,
    window_counts,
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
    # the asker's own words: one word of each `near` set within reach, in one sentence
    ("My husband says his chest feels like an elephant is sitting on it", {"chest_pain_acs"}),
    ("Mum's mouth has gone lopsided", {"stroke_fast"}),
    ("My throat hurts and my tonsils look swollen", {"sore_throat"}),  # no allergen: not anaphylaxis
    # negated mentions do not count
    ("No chest pain at all, just heartburn after dinner", {"heartburn_gord"}),
    ("I'm not suicidal, I just can't sleep at night", {"insomnia"}),
    ("My son has a cough but no fever", {"acute_cough"}),
    # past and general mentions do not make an emergency (routine statements still match)
    ("I had a stroke in 2019. How can I keep my blood pressure down?", {"hypertension_raised_reading"}),
    ("How can I lower my risk of a heart attack?", set()),
    ("What are the warning signs of a stroke?", set()),
    ("My dad had a heart attack 3 years ago and now his chest feels tight again", {"chest_pain_acs"}),
    # an emergency or urgent match drops the everyday complaint that came with it
    ("I've had a cough for a week and now crushing chest pain", {"chest_pain_acs"}),
    # breathlessness is the asthma statement only with asthma in the prompt
    ("I can't breathe and my inhaler isn't helping", {"severe_asthma_attack"}),
    ("I can't breathe properly after the fire", set()),
    # common self-care and routine presentations (second round of issue 19)
    ("my little girl keeps scratching her bottom at night and I saw tiny white worms", {"threadworm"}),
    ("the nursery sent a letter about head lice", {"head_lice"}),
    ("my grandson has chickenpox, what can I give him?", {"chickenpox"}),
    ("my nose has been bleeding for five minutes", {"nosebleed"}),
    ("rheumatologist has put me on methotrexate, how do I take it?", {"methotrexate_use"}),
    ("the mole on my back has changed colour", {"changing_mole"}),
    ("is it worth taking vitamin D in winter?", {"vitamin_d_supplement"}),
    ("10 weeks pregnant with awful morning sickness", {"nausea_vomiting_pregnancy"}),
    ("I have no nosebleeds, just a blocked nose", {"common_cold"}),  # the negated nosebleed does not match
    ("fainted in the queue at the post office but came round straight away", {"uncomplicated_faint"}),
])
def test_match_examples(prompt, expected):
    assert {g.id for g in match_guidelines(prompt)} == expected


def _in_set(word, group):
    return any(word == w or (w.endswith("*") and word.startswith(w[:-1])) for w in group)


@functools.lru_cache(maxsize=None)
def _compiled(phrase):
    return re.compile(phrase_regex([phrase]))


def _naive_match(guidelines, prompt, red_flags=()):
    """The matcher's definition, written the slow way: every phrase searched on its own, every
    co-occurrence found by trying every pair of positions."""
    reading = PromptReading(prompt)

    def counts(phrase, strict):
        if phrase.rstrip("*") not in reading.text:        # speed only: the regex needs these letters
            return False
        for found in _compiled(phrase).finditer(reading.text):
            first, last = reading.word_at(found.start()), reading.word_at(found.end() - 1) + 1
            if reading.counts(first, last, strict):
                return True
        return False

    def co_occurs(window, strict):
        words = reading.words
        for p in range(len(words)):
            if not _in_set(words[p], window.word_sets[0]):
                continue
            matched = [p]
            for group in window.word_sets[1:]:
                near = [q for q in range(len(words)) if q != p and abs(q - p) <= window.within
                        and reading.sentence[q] == reading.sentence[p] and _in_set(words[q], group)]
                if not near:
                    break
                matched.append(min(near, key=lambda q: abs(q - p)))
            else:
                if window_counts(reading, matched, strict):
                    return True
        return False

    matched = []
    for g in guidelines:
        strict = g.urgency in ("emergency", "urgent")
        hit = (any(all(counts(part, strict) for part in t.split(" + ")) for t in g.triggers)
               or any(co_occurs(w, strict) for w in g.near) or bool(set(g.red_flags) & set(red_flags)))
        if hit and (not g.context or any(counts(c, False) for c in g.context)):
            matched.append(g)
    dropped = {s for g in matched for s in g.supersedes}
    if any(g.urgency in ("emergency", "urgent") for g in matched):
        dropped |= {g.id for g in matched if g.urgency not in ("emergency", "urgent")}
    return tuple(g.id for g in matched if g.id not in dropped)


def test_matcher_equals_naive_definition_on_every_labelled_prompt():
    guidelines = load_guidelines()
    matcher = GuidelineMatcher(guidelines)
    prompts = {s.prompt for s in load_ordering_set()} | {i.prompt for i in load_hallucination_set()}
    assert len(prompts) > 180
    matched_any = 0
    for prompt in sorted(prompts):
        fast = tuple(g.id for g in matcher.match(prompt))
        assert fast == _naive_match(guidelines, prompt), prompt
        matched_any += bool(fast)
    assert matched_any > 90
    # through red flags recognised elsewhere: the stroke statement lists the `stroke` flag
    assert [g.id for g in matcher.match("she seems odd", red_flags={"stroke"})] == ["stroke_fast"]
    assert _naive_match(guidelines, "she seems odd", {"stroke"}) == ("stroke_fast",)


@pytest.mark.parametrize("prompt, phrase, negated", [
    ("I have no chest pain", "chest pain", True),
    ("He doesn't have a fever", "fever", True),
    ("I'm not suicidal", "suicidal", True),
    ("Stroke was ruled out", "stroke", True),
    ("No fever but a rash that won't fade", "rash", False),       # "but" ends the scope
    ("My baby is not feeding and has a fever", "fever", False),   # "not feeding", then "and"
    ("He isn't breathing properly", "breathing", False),          # the complaint itself
    ("I can't lift my arm", "arm", False),
])
def test_prompt_negation(prompt, phrase, negated):
    reading = PromptReading(prompt)
    start = reading.words.index(phrase.split()[0])
    assert reading.is_negated(start, start + len(phrase.split())) is negated


@pytest.mark.parametrize("prompt, phrase, current", [
    ("I had a stroke in 2019", "stroke", False),
    ("My dad had a heart attack 3 years ago", "heart", False),
    ("How can I lower my risk of a heart attack", "heart", False),
    ("What are the warning signs of a stroke", "stroke", False),
    ("Since my stroke I get tired", "stroke", False),
    ("I think I'm having a stroke right now", "stroke", True),
    ("I had a stroke in 2019 and now his face is drooping", "face", True),   # "now" ends the reach
])
def test_prompt_history_and_general_mentions(prompt, phrase, current):
    reading = PromptReading(prompt)
    start = reading.words.index(phrase)
    assert reading.is_current(start, start + 1) is current


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
    ("guidelines:" + GOOD_ENTRY.replace("triggers: [thing]", "triggers: [thing]\n    near: [{words: [[a]]}]"),
     "(g1).near[0]: needs `words`"),
    ("guidelines:" + GOOD_ENTRY.replace("triggers: [thing]", "triggers: [thing]\n    near: [{words: [[a], [b c]]}]"),
     "is not one plain word"),
    ("guidelines:" + GOOD_ENTRY.replace("triggers: [thing]", "triggers: [thing]\n    near: [{words: [[a], [b]], within: 40}]"),
     "`within` must be"),
    ("guidelines:" + GOOD_ENTRY.replace("triggers: [thing]", "triggers: [thing]\n    red_flags: [Not-An-Id]"),
     "(g1).red_flags"),
    ("guidelines:" + GOOD_ENTRY.replace("phrases: [do it]", "phrases: [do it], immediate: yes please"),
     "`immediate` must be"),
    ("guidelines:" + GOOD_ENTRY.replace("triggers: [thing]", 'triggers: ["thing {9-2}"]'), "must run upwards"),
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


def test_near_rules_ranges_and_red_flags_load(tmp_path):
    body = GOOD_ENTRY.replace("triggers: [thing]", 'triggers: ["thing {1-3} weeks old"]\n'
                              "    near: [{words: [[chest], [tight*, heavy]], within: 3}]\n"
                              "    red_flags: [stroke]")
    (guideline,) = load_guidelines(_write(tmp_path, "guidelines:" + body))
    stroke = next(flag for flag in load_knowledge().red_flags if flag.id == "stroke")
    assert guideline.triggers[:3] == ("thing 1 weeks old", "thing 2 weeks old", "thing 3 weeks old")
    assert set(guideline.triggers[3:]) == {canonical_prompt(t) for t in stroke.triggers}   # derived
    assert guideline.near[0].word_sets == (("chest",), ("tight*", "heavy")) and guideline.near[0].within == 3
    assert len(guideline.near) == 1 + len(stroke.near)
    assert guideline.red_flags == ("stroke",)
    matcher = GuidelineMatcher((guideline,))
    assert matcher.match("my chest is so tightly bound")
    assert not matcher.match("my chest. it is tight")             # one sentence only
    assert not matcher.match("my chest is not at all bad but my leg is heavy")  # out of reach


def test_every_red_flag_a_guideline_lists_exists_in_the_knowledge_base():
    known = {flag.id for flag in load_knowledge().red_flags}
    listed = {flag for g in load_guidelines() for flag in g.red_flags}
    assert listed and listed <= known, sorted(listed - known)
