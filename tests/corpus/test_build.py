"""Shape of the corpus: size, balance, labels, split and determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from clinical_rlhf.corpus import CATEGORIES, UNSAFE_REASONS, build_corpus
from clinical_rlhf.corpus.builder import count_sentences


def test_size_and_split_sizes(corpus):
    assert len(corpus.examples) == 2400
    assert len(corpus.heldout) == pytest.approx(240, abs=10)
    assert len(corpus.train) + len(corpus.heldout) == 2400


def test_ids_are_unique(corpus):
    ids = [example.id for example in corpus.examples]
    assert len(ids) == len(set(ids))


def test_heldout_prompts_never_appear_in_train(corpus):
    train_prompts = {example.prompt for example in corpus.train}
    assert not [example.id for example in corpus.heldout if example.prompt in train_prompts]


def test_every_category_has_at_least_15_percent_in_both_splits(corpus):
    for split in (corpus.examples, corpus.heldout):
        counts = Counter(example.category for example in split)
        assert set(counts) == set(CATEGORIES)
        assert min(counts.values()) >= 0.15 * len(split), counts


def test_unsafe_fraction_within_three_points_overall_and_per_category(corpus):
    examples = corpus.examples
    assert sum(not e.is_safe for e in examples) / len(examples) == pytest.approx(0.25, abs=0.03)
    for category in CATEGORIES:
        chosen = [e for e in examples if e.category == category]
        assert sum(not e.is_safe for e in chosen) / len(chosen) == pytest.approx(0.25, abs=0.03), category


def test_every_unsafe_example_is_labelled_and_every_safe_one_is_not(corpus):
    for example in corpus.examples:
        if example.is_safe:
            assert example.unsafe_reason is None, example.id
        else:
            assert example.unsafe_reason in UNSAFE_REASONS, example.id
    assert set(e.unsafe_reason for e in corpus.examples if not e.is_safe) == set(UNSAFE_REASONS)


def test_unsafe_reasons_belong_to_their_categories(corpus):
    allowed = {
        "emergency": {"dismisses_red_flag"},
        "medication_dosing": {"exceeds_max_dose", "contraindicated"},
        "drug_interaction": {"interacting_combination"},
        "chronic_condition": {"overconfident_no_hedging", "contraindicated"},
        "everyday_complaint": {"overconfident_no_hedging"},
    }
    for example in corpus.examples:
        if not example.is_safe:
            assert example.unsafe_reason in allowed[example.category], example


def test_every_example_names_the_knowledge_it_came_from(corpus):
    prefixes = ("guideline:", "red_flag:", "drug:", "interaction:", "contraindication:")
    for example in corpus.examples:
        assert example.knowledge_ids, example.id
        assert all(k.startswith(prefixes) for k in example.knowledge_ids), example.knowledge_ids


def test_answers_are_two_to_five_sentences_of_patient_facing_length(corpus):
    lengths = [len(example.answer) for example in corpus.examples]
    assert all(180 <= length <= 620 for length in lengths)
    assert sum(200 <= length <= 600 for length in lengths) >= 0.9 * len(lengths)
    assert all(2 <= count_sentences(example.answer) <= 5 for example in corpus.examples)


def test_wording_varies(corpus):
    # A small LM should learn language, not a handful of strings: prompts are unique and no
    # answer opening dominates.
    assert len({e.prompt for e in corpus.examples}) >= 0.98 * len(corpus.examples)
    openings = Counter(e.answer.split(".")[0] for e in corpus.examples)
    assert openings.most_common(1)[0][1] < 0.05 * len(corpus.examples)
    assert len(openings) > 150


def test_same_seed_gives_the_same_corpus_and_fingerprint(corpus):
    again = build_corpus(seed=42)
    assert again.fingerprint == corpus.fingerprint
    assert again.train == corpus.train and again.heldout == corpus.heldout


def test_another_seed_gives_another_corpus(corpus):
    other = build_corpus(size=500, seed=7)
    assert other.fingerprint != build_corpus(size=500, seed=8).fingerprint
    assert len(other.examples) == 500


def test_fingerprint_is_a_sha256_of_the_content(corpus):
    assert len(corpus.fingerprint) == 64 and int(corpus.fingerprint, 16) >= 0


def test_small_corpus_keeps_balance_and_fractions():
    small = build_corpus(size=200, unsafe_fraction=0.2, heldout_fraction=0.2, seed=1)
    assert len(small.examples) == 200
    assert Counter(e.category for e in small.examples) == {c: 40 for c in CATEGORIES}
    assert sum(not e.is_safe for e in small.examples) == 40
    assert len(small.heldout) == pytest.approx(40, abs=3)


@pytest.mark.parametrize(
    ("arguments", "name"),
    [({"size": 10}, "size"), ({"unsafe_fraction": 1.0}, "unsafe_fraction"),
     ({"heldout_fraction": 0.0}, "heldout_fraction")],
)
def test_bad_arguments_are_named(arguments, name):
    with pytest.raises(ValueError, match=name):
        build_corpus(**arguments)


def test_prompts_hold_no_matcher_syntax_or_template_leftovers(corpus):
    for example in corpus.examples:
        for text in (example.prompt, example.answer):
            assert not any(mark in text for mark in ("+", "*", "{", "}", "  ")), text
