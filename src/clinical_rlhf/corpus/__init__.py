"""The clinical corpus: patient questions with safe and deliberately unsafe answers, labelled.

Generated from the knowledge base (red flags, drugs and doses, interactions, contraindications,
guidelines) with templates and variation; no clinical fact is written in this package.

    from clinical_rlhf.corpus import build_corpus, load_prompts_jsonl
    corpus = build_corpus(size=2400, unsafe_fraction=0.25, heldout_fraction=0.1, seed=42)
    corpus.train, corpus.heldout      # tuple[CorpusExample, ...]; no held-out prompt is in train
    corpus.fingerprint                # sha256 of the content
    train_path, heldout_path = corpus.write_jsonl("artifacts/corpus")
    prompts = load_prompts_jsonl(train_path)

`corpus.pairs` writes a second answer to a corpus question (the other of safe/unsafe, one without
the guideline's advice, a paraphrase), replaying the writer recorded by `build_corpus(trace=...)`;
the shipped preference set (`clinical_rlhf.feedback.builder`) is built from it.

This package imports no torch.
"""

from clinical_rlhf.corpus.builder import build_corpus
from clinical_rlhf.corpus.example import (
    CATEGORIES,
    UNSAFE_REASONS,
    Corpus,
    CorpusExample,
    CorpusPaths,
)
from clinical_rlhf.corpus.jsonl import load_prompts_jsonl

__all__ = [
    "CATEGORIES",
    "UNSAFE_REASONS",
    "Corpus",
    "CorpusExample",
    "CorpusPaths",
    "build_corpus",
    "load_prompts_jsonl",
]
