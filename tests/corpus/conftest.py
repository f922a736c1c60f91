"""One corpus built per test session (about two seconds) and shared read-only by the tests."""

from __future__ import annotations

import pytest

from clinical_rlhf.corpus import Corpus, build_corpus
from clinical_rlhf.corpus.sources import Sources, load_sources


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """The default corpus: 2400 pairs, 25% unsafe, 10% held out, seed 42."""
    return build_corpus()


@pytest.fixture(scope="session")
def sources() -> Sources:
    return load_sources()
