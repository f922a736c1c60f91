"""Agreement between several answers to one prompt (self-consistency, Manakul et al. 2023,
"SelfCheckGPT"): answers sampled from a model that knows the fact agree on it; answers to a
question the model is guessing at diverge.

Similarity of two answers: the mean of the Jaccard overlap of their content-word stems and,
when either names drugs or doses, the Jaccard overlap of those claims (drug names, and the doses
stated for them rounded to 10 mg). Pure Python, used by the hallucination check and by the sampling estimator.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from clinical_rlhf.knowledge.guidelines import normalize_text
from clinical_rlhf.reward.coherence import content_stems
from clinical_rlhf.reward.drug_mentions import DrugIndex, stated_doses
from clinical_rlhf.reward.text import words


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; two empty sets are identical (1.0)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def claims(text: str, index: DrugIndex | None) -> set[str]:
    """Checkable claims of an answer: the drugs it names and the doses it states."""
    if index is None:
        return set()
    normalized = normalize_text(text)
    mentions = index.mentions(normalized)
    found = {f"drug:{m.drug.name}" for m in mentions}
    found |= {f"dose:{s.drug.name}:{round(s.per_dose_mg / 10) * 10:g}"
              for s in stated_doses(normalized, mentions) if s.per_dose_mg is not None}
    return found


def similarity(a: str, b: str, index: DrugIndex | None = None) -> float:
    stems = jaccard(content_stems(words(normalize_text(a))), content_stems(words(normalize_text(b))))
    claims_a, claims_b = claims(a, index), claims(b, index)
    if not claims_a and not claims_b:
        return stems
    return 0.5 * stems + 0.5 * jaccard(claims_a, claims_b)


def agreement(texts: Sequence[str], index: DrugIndex | None = None) -> float:
    """Mean pairwise similarity of `texts` in [0, 1]; fewer than two texts agree fully (1.0)."""
    pairs = list(combinations(texts, 2))
    if not pairs:
        return 1.0
    return sum(similarity(a, b, index) for a, b in pairs) / len(pairs)


def support(answer: str, samples: Sequence[str], index: DrugIndex | None = None) -> float:
    """Mean similarity of `answer` to each sampled answer (SelfCheckGPT's question: do the
    samples support what this answer says?); 1.0 without samples."""
    if not samples:
        return 1.0
    return sum(similarity(answer, sample, index) for sample in samples) / len(samples)


def group_samples(prompts: Sequence[str], responses: Sequence[str]) -> list[list[str]]:
    """For each answer, the other answers in the batch to the same prompt (its samples), as a
    trainer with several samples per prompt gets them for free."""
    by_prompt: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        by_prompt.setdefault(prompt, []).append(i)
    return [[responses[j] for j in by_prompt[prompt] if j != i] for i, prompt in enumerate(prompts)]
