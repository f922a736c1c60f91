"""The shipped preference set: expert-style judgements built from the corpus and knowledge base.

Every pair is one corpus prompt with two answers written by the corpus's own writers
(`corpus.pairs`), judged by construction:

| source                            | preferred          | dispreferred                          |
|-----------------------------------|--------------------|---------------------------------------|
| corpus/dismisses_red_flag         | emergency advice   | an emergency waved away               |
| corpus/exceeds_max_dose           | the labelled limit | a dose above the knowledge base's max |
| corpus/interacting_combination    | caution, referral  | "go ahead" with an interacting pair   |
| corpus/contraindicated            | avoid, referral    | "go ahead" despite a contraindication |
| corpus/overconfident_no_hedging   | hedged, safety net | certain, no hedge, no safety net      |
| corpus/guideline_omitted          | guideline advice   | safe and hedged, but none of it       |
| corpus/paraphrase                 | tie: the same safe answer in other words                   |

These are synthetic judgements derived from the knowledge base (annotator `corpus-builder`),
not clinicians' opinions: they teach what the knowledge base already says, and they make a
starting set a team replaces or extends with its own experts' judgements.

The corpus is the demo model's (`demo_model` settings), so train pairs use train-split prompts
and held-out pairs exactly held-out prompts: nothing held out reaches SFT or PPO training.
Same settings and knowledge, same files; a test rebuilds them and compares.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clinical_rlhf.config import DemoModelConfig
from clinical_rlhf.corpus import Corpus, build_corpus
from clinical_rlhf.corpus.pairs import AnswerPair, Trace, guideline_omission, opposite_answer, paraphrase
from clinical_rlhf.corpus.sources import load_sources
from clinical_rlhf.feedback.preferences import Choice, PreferenceRecord, write_preferences

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "preferences"
"""Where the shipped set lives: `train.jsonl` and `heldout.jsonl`."""
ANNOTATOR = "corpus-builder"
GUIDELINE_SHARE = 0.5
"""Share of the possible guideline-omission pairs kept: ~250, next to ~2,100 safe/unsafe pairs."""
TIE_SHARE = 0.1
"""Share of the possible paraphrase ties kept: ~90, enough to exercise tie handling."""

# Which objectives the construction decides: "+" the preferred side, "=" a tie.
_OBJECTIVES: dict[str, dict[str, str]] = {
    "dismisses_red_flag": {"safety": "+", "guidelines": "+", "coherence": "="},
    "exceeds_max_dose": {"safety": "+", "coherence": "="},
    "interacting_combination": {"safety": "+", "coherence": "="},
    "contraindicated": {"safety": "+", "coherence": "="},
    "overconfident_no_hedging": {"safety": "+", "uncertainty": "+", "coherence": "="},
    "guideline_omitted": {"guidelines": "+", "safety": "=", "coherence": "="},
    "paraphrase": {"safety": "=", "guidelines": "=", "uncertainty": "=", "coherence": "="},
}
_RATIONALES = {
    "dismisses_red_flag": "{other} waves away an emergency instead of sending the patient for help",
    "exceeds_max_dose": "{other} recommends a dose above the maximum in the knowledge base",
    "interacting_combination": "{other} okays a combination the knowledge base lists as interacting",
    "contraindicated": "{other} okays a medicine the knowledge base lists as contraindicated here",
    "overconfident_no_hedging": "{other} is certain without examining anyone and gives no safety net",
    "guideline_omitted": "{other} is safe but leaves out the guideline's advice",
    "paraphrase": "both give the same safe advice in other words",
}
SOURCES: tuple[str, ...] = tuple(f"corpus/{name}" for name in _OBJECTIVES)


@dataclass(frozen=True)
class PreferenceSet:
    """The two splits of a built set. No held-out prompt appears in `train`."""

    train: tuple[PreferenceRecord, ...]
    heldout: tuple[PreferenceRecord, ...]

    def stats(self) -> dict[str, object]:
        """Sizes, ties and pairs per source, per split."""
        def count(records: Sequence[PreferenceRecord]) -> dict[str, object]:
            return {"pairs": len(records), "ties": sum(r.is_tie for r in records),
                    "sources": dict(sorted(Counter(r.source for r in records).items()))}
        return {"train": count(self.train), "heldout": count(self.heldout)}

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """`train.jsonl` and `heldout.jsonl` in `directory`, each written atomically."""
        directory = Path(directory)
        return (write_preferences(directory / "train.jsonl", self.train),
                write_preferences(directory / "heldout.jsonl", self.heldout))


def shipped_paths() -> tuple[Path, Path]:
    """(train, held-out) files of the shipped set."""
    return SHIPPED_DIR / "train.jsonl", SHIPPED_DIR / "heldout.jsonl"


def _record(pair: AnswerPair, contrast: str, rng: random.Random) -> PreferenceRecord:
    """A record with the better answer on a random side (a tie's answers too)."""
    better_first = rng.random() < 0.5
    answer_a, answer_b = (pair.first, pair.second) if better_first else (pair.second, pair.first)
    tie = pair.kind == "paraphrase"
    better: Choice = "tie" if tie else ("a" if better_first else "b")
    other = "a" if better == "b" else "b"
    objectives: dict[str, Choice] = {name: ("tie" if mark == "=" else better)  # type: ignore[misc]
                                     for name, mark in _OBJECTIVES[contrast].items()}
    return PreferenceRecord(
        id=f"{pair.example.id}/{contrast}", prompt=pair.example.prompt, answer_a=answer_a, answer_b=answer_b,
        preferred=better, annotator=ANNOTATOR, rationale=_RATIONALES[contrast].format(other=other.upper()),
        objectives=objectives, source=f"corpus/{contrast}")


def build_preference_set(demo: DemoModelConfig | None = None, *, seed: int = 0,
                         guideline_share: float = GUIDELINE_SHARE, tie_share: float = TIE_SHARE,
                         knowledge_dir: Path | None = None) -> PreferenceSet:
    """Build the set from the corpus `demo` describes (default: the demo model's corpus).

    `seed` drives which side is preferred and which optional pairs are kept; the corpus keeps
    its own seed (`demo.seed`), so its split is the demo model's.
    """
    demo = demo or DemoModelConfig()
    trace: dict = {}
    corpus = build_corpus(size=demo.corpus_size, unsafe_fraction=demo.unsafe_fraction,
                          heldout_fraction=demo.heldout_fraction, seed=demo.seed,
                          knowledge_dir=knowledge_dir, trace=trace)
    return preference_set_from_corpus(corpus, trace, seed=seed, guideline_share=guideline_share,
                                      tie_share=tie_share, knowledge_dir=knowledge_dir)


def preference_set_from_corpus(corpus: Corpus, trace: Trace, *, seed: int = 0, guideline_share: float = GUIDELINE_SHARE,
                               tie_share: float = TIE_SHARE, knowledge_dir: Path | None = None) -> PreferenceSet:
    """The set from a corpus built with `build_corpus(trace=trace)` (and the same knowledge)."""
    for name, share in (("guideline_share", guideline_share), ("tie_share", tie_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {share}")
    sources = load_sources(knowledge_dir)
    rng = random.Random(seed)
    splits: list[list[PreferenceRecord]] = [[], []]
    for split, examples in zip(splits, (corpus.train, corpus.heldout)):
        for example in examples:
            writer, state = trace[example.id]
            pair = opposite_answer(example, writer, state, sources)
            if pair is not None:
                split.append(_record(pair, pair.unsafe_reason, rng))
            # Each optional pair draws its own stream, so keeping one never shifts another.
            if rng.random() < guideline_share:
                pair = guideline_omission(example, state, sources, random.Random(f"{seed}/{example.id}/guideline"))
                if pair is not None:
                    split.append(_record(pair, "guideline_omitted", rng))
            if rng.random() < tie_share:
                pair = paraphrase(example, state, sources, random.Random(f"{seed}/{example.id}/paraphrase"))
                if pair is not None:
                    split.append(_record(pair, "paraphrase", rng))
    return PreferenceSet(train=tuple(splits[0]), heldout=tuple(splits[1]))
