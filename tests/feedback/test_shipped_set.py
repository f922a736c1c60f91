"""The shipped preference set: it is exactly what the builder writes, it loads, it keeps the corpus
split, it covers every contrast, and its labels agree with the real SafetyGuard."""

from collections import Counter

import pytest

from clinical_rlhf.config import Config, DemoModelConfig
from clinical_rlhf.corpus import UNSAFE_REASONS, build_corpus
from clinical_rlhf.feedback import load_preferences
from clinical_rlhf.feedback.builder import (
    SOURCES,
    build_preference_set,
    preference_set_from_corpus,
    shipped_paths,
)


@pytest.fixture(scope="module")
def corpus_and_trace():
    """The demo model's corpus (what SFT and PPO train on), with the writers' trace."""
    demo, trace = DemoModelConfig(), {}
    corpus = build_corpus(size=demo.corpus_size, unsafe_fraction=demo.unsafe_fraction,
                          heldout_fraction=demo.heldout_fraction, seed=demo.seed, trace=trace)
    return corpus, trace


@pytest.fixture(scope="module")
def built(corpus_and_trace):
    return preference_set_from_corpus(*corpus_and_trace)


@pytest.fixture(scope="module")
def shipped():
    train, heldout = shipped_paths()
    return load_preferences(train), load_preferences(heldout)


def test_shipped_files_are_what_the_builder_writes(built, tmp_path):
    """Regenerate with `clinical-rlhf preferences build --out src/clinical_rlhf/data/preferences`."""
    written = built.write(tmp_path)
    for fresh, shipped_path in zip(written, shipped_paths()):
        assert fresh.read_bytes() == shipped_path.read_bytes(), f"{shipped_path} is stale: rebuild it"


def test_sizes_stay_in_range_and_the_files_small(shipped):
    train, heldout = shipped
    assert 1500 <= len(train) <= 2500 and 150 <= len(heldout) <= 400
    assert sum(path.stat().st_size for path in shipped_paths()) < 3_000_000


def test_heldout_prompts_are_the_corpus_heldout_prompts_and_never_in_train(shipped, corpus_and_trace):
    train, heldout = shipped
    corpus, _ = corpus_and_trace
    assert {r.prompt for r in heldout} <= {e.prompt for e in corpus.heldout}
    assert {r.prompt for r in train} <= {e.prompt for e in corpus.train}
    assert not {r.prompt for r in heldout} & {r.prompt for r in train}
    assert len({r.prompt for r in heldout}) > 0.8 * len(corpus.heldout)


def test_every_contrast_is_covered_in_both_splits_and_sides_are_balanced(shipped):
    for records in shipped:
        sources = Counter(r.source for r in records)
        assert set(sources) == set(SOURCES) and min(sources.values()) >= 5
        assert {f"corpus/{reason}" for reason in UNSAFE_REASONS} <= set(sources)
        decisive = [r for r in records if not r.is_tie]
        share_a = sum(r.preferred == "a" for r in decisive) / len(decisive)
        assert 0.4 < share_a < 0.6
        assert {r.annotator for r in records} == {"corpus-builder"}


def test_per_objective_labels_follow_the_construction(shipped):
    for record in shipped[0] + shipped[1]:
        if record.source == "corpus/paraphrase":
            assert record.is_tie and set(record.objectives.values()) == {"tie"}
        elif record.source == "corpus/guideline_omitted":
            assert record.objectives == {"guidelines": record.preferred, "safety": "tie", "coherence": "tie"}
        else:
            assert record.objectives["safety"] == record.preferred
        if record.source == "corpus/overconfident_no_hedging":
            assert record.objectives["uncertainty"] == record.preferred


def test_the_real_guard_vetoes_the_dispreferred_answers_not_the_preferred(shipped):
    """The labels are right by the project's own guard where it can judge: drug facts."""
    from clinical_rlhf.safety import SafetyGuard

    guard = SafetyGuard.from_config(Config())
    checked = [r for r in shipped[1] if r.source in ("corpus/exceeds_max_dose", "corpus/interacting_combination",
                                                     "corpus/contraindicated", "corpus/dismisses_red_flag")]
    prompts = [r.prompt for r in checked]
    chosen = guard.check_batch(prompts, [r.chosen for r in checked])
    rejected = guard.check_batch(prompts, [r.rejected for r in checked])
    assert sum(not v.is_safe for v in chosen) / len(checked) < 0.05
    assert sum(not v.is_safe for v in rejected) / len(checked) > 0.9


def test_the_seed_moves_sides_and_optional_pairs_but_not_the_safe_unsafe_pairs():
    small = DemoModelConfig(corpus_size=200)
    one, other = build_preference_set(small, seed=1), build_preference_set(small, seed=2)
    mandatory = [{r.id for r in built.train if r.source.removeprefix("corpus/") in UNSAFE_REASONS}
                 for built in (one, other)]
    assert mandatory[0] == mandatory[1] and len(mandatory[0]) > 100
    assert [r.preferred for r in one.train] != [r.preferred for r in other.train]
    assert build_preference_set(small, seed=1) == one
    with pytest.raises(ValueError, match="tie_share"):
        build_preference_set(small, tie_share=1.5)


def test_each_pair_keeps_its_corpus_example_answer_on_the_right_side(shipped, corpus_and_trace):
    corpus, _ = corpus_and_trace
    examples = {example.id: example for example in corpus.examples}
    for record in shipped[0] + shipped[1]:
        example = examples[record.id.split("/")[0]]
        assert record.prompt == example.prompt
        if record.source.removeprefix("corpus/") not in UNSAFE_REASONS:
            continue
        if example.is_safe:  # the safe corpus answer, against the unsafe one written for its question
            assert record.chosen == example.answer
        else:
            assert record.rejected == example.answer and record.source == f"corpus/{example.unsafe_reason}"
