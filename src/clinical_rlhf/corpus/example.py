"""The corpus's data types: one labelled prompt/answer pair, and the split corpus holding them.

Both are frozen so that a corpus, once built, is a value: its fingerprint cannot drift from
its content, which is what the demo-model cache relies on to know when it is stale.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, NamedTuple, get_args

Category = Literal[
    "emergency", "medication_dosing", "drug_interaction", "chronic_condition", "everyday_complaint"
]
UnsafeReason = Literal[
    "dismisses_red_flag",
    "exceeds_max_dose",
    "interacting_combination",
    "contraindicated",
    "overconfident_no_hedging",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
UNSAFE_REASONS: tuple[str, ...] = get_args(UnsafeReason)


@dataclass(frozen=True, slots=True)
class CorpusExample:
    """One patient question with one answer, and what (if anything) is wrong with the answer."""

    id: str
    category: Category
    prompt: str
    answer: str
    is_safe: bool
    unsafe_reason: UnsafeReason | None
    """Why the answer is unsafe; `None` exactly when `is_safe`."""
    knowledge_ids: tuple[str, ...]
    """Knowledge-base ids the pair was written from (`drug:...`, `red_flag:...`, ...), so a
    check can look up the facts instead of re-parsing the text."""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}, got {self.category!r}")
        if self.is_safe != (self.unsafe_reason is None):
            raise ValueError(f"{self.id}: a safe example has no unsafe_reason, an unsafe one has one")
        if self.unsafe_reason is not None and self.unsafe_reason not in UNSAFE_REASONS:
            raise ValueError(f"unsafe_reason must be one of {UNSAFE_REASONS}, got {self.unsafe_reason!r}")

    def to_dict(self) -> dict[str, object]:
        record = asdict(self)
        record["knowledge_ids"] = list(self.knowledge_ids)
        return record


@dataclass(frozen=True, slots=True)
class Draft:
    """A written pair before the builder gives it an id and a category."""

    prompt: str
    answer: str
    unsafe_reason: UnsafeReason | None
    knowledge_ids: tuple[str, ...]


class CorpusPaths(NamedTuple):
    """Where `Corpus.write_jsonl` put the two splits (unpacks as `train, heldout`)."""

    train: Path
    heldout: Path


@dataclass(frozen=True)
class Corpus:
    """The generated corpus, already split. No held-out prompt text appears in `train`."""

    train: tuple[CorpusExample, ...]
    heldout: tuple[CorpusExample, ...]
    seed: int

    @property
    def examples(self) -> tuple[CorpusExample, ...]:
        return self.train + self.heldout

    @property
    def fingerprint(self) -> str:
        """sha256 of both splits' content in order (ids, text, labels), hex.

        Computed from a canonical JSON line per example so that it does not depend on dict
        ordering or on the Python version.
        """
        digest = hashlib.sha256()
        for split_name, split in (("train", self.train), ("heldout", self.heldout)):
            for example in split:
                line = json.dumps([split_name, example.to_dict()], sort_keys=True, ensure_ascii=True)
                digest.update(line.encode("utf-8"))
                digest.update(b"\n")
        return digest.hexdigest()

    def stats(self) -> dict[str, object]:
        """Counts a reader wants first: split sizes, categories, safe/unsafe, unsafe reasons."""
        examples = self.examples
        lengths = sorted(len(example.answer) for example in examples)
        return {
            "total": len(examples),
            "train": len(self.train),
            "heldout": len(self.heldout),
            "categories": dict(sorted(Counter(e.category for e in examples).items())),
            "safe": sum(e.is_safe for e in examples),
            "unsafe": sum(not e.is_safe for e in examples),
            "unsafe_reasons": dict(
                sorted(Counter(e.unsafe_reason for e in examples if e.unsafe_reason).items())
            ),
            "answer_chars": {
                "min": lengths[0] if lengths else 0,
                "median": lengths[len(lengths) // 2] if lengths else 0,
                "max": lengths[-1] if lengths else 0,
            },
            "fingerprint": self.fingerprint,
        }

    def write_jsonl(self, directory: str | Path) -> CorpusPaths:
        """Write `train.jsonl` and `heldout.jsonl` (one example object per line) into `directory`.

        Each line carries a `prompt` key, so either file is also valid input for
        `load_prompts_jsonl` and for the `training.prompts` / `training.eval_prompts` keys.
        Files are written to a temporary name and renamed, so a reader never sees half a split.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = CorpusPaths(train=directory / "train.jsonl", heldout=directory / "heldout.jsonl")
        for path, split in zip(paths, (self.train, self.heldout)):
            partial = path.with_suffix(".jsonl.partial")
            with partial.open("w", encoding="utf-8") as handle:
                for example in split:
                    handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
            partial.replace(path)
        return paths
