"""Two answers to one corpus prompt: what the shipped preference set is built from.

The corpus writes one answer per prompt, safe or unsafe. `build_corpus(trace=...)` records, for
every example, the writer that wrote it and the random state just before the call; every writer
draws its whole question before it branches on `unsafe`, so replaying it from that state with
the flag flipped writes the same question with the other answer. Presentation questions can
also be re-answered directly (`presentation_question` replays the question part): once more in
other words, or without the guideline's advice.

Nothing clinical is written here: every answer comes from the corpus writers, which take their
facts from the knowledge base. Each function returns None when the replay does not give the
example's own prompt back (it then has no pair of that kind), so a pair is never built around
a question other than the one the corpus holds.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from clinical_rlhf.corpus.builder import (
    MAX_ANSWER_CHARS,
    MAX_ANSWER_SENTENCES,
    MIN_ANSWER_CHARS,
    Writer,
    count_sentences,
    presentation_question,
)
from clinical_rlhf.corpus.example import CorpusExample
from clinical_rlhf.corpus.presentation_answers import safe_answer
from clinical_rlhf.corpus.presentation_prompts import PresentationPrompt
from clinical_rlhf.corpus.sources import Presentation, Sources
from clinical_rlhf.knowledge.guidelines import normalize_text

PairKind = Literal["safe_vs_unsafe", "guideline_vs_omitted", "paraphrase"]
Trace = Mapping[str, tuple[Writer, object]]
"""`build_corpus(trace=...)`'s record: example id -> (writer, random state before its call)."""

_PRESENTATION_IDS = ("guideline:", "red_flag:")


@dataclass(frozen=True, slots=True)
class AnswerPair:
    """One corpus prompt with two answers; `first` is the better one unless `kind == "paraphrase"`."""

    example: CorpusExample
    """The corpus example the prompt comes from (its own answer is `first` or `second`)."""
    kind: PairKind
    """`safe_vs_unsafe`: the safe answer and the unsafe one (`unsafe_reason`); `guideline_vs_omitted`:
    the safe answer and one that leaves out the guideline's advice; `paraphrase`: two safe answers
    saying the same in other words (a tie)."""
    first: str
    second: str
    unsafe_reason: str | None = None
    """Why the unsafe answer of a `safe_vs_unsafe` pair is unsafe (the corpus's reasons)."""


def _fits(answer: str) -> bool:
    """The corpus's own bounds on an answer (length and sentences), so pairs read like the corpus."""
    return (MIN_ANSWER_CHARS <= len(answer) <= MAX_ANSWER_CHARS
            and 2 <= count_sentences(answer) <= MAX_ANSWER_SENTENCES)


def _replay(state: object) -> random.Random:
    rng = random.Random()
    rng.setstate(state)  # type: ignore[arg-type]
    return rng


def opposite_answer(example: CorpusExample, writer: Writer, state: object, sources: Sources) -> AnswerPair | None:
    """The example's prompt with a safe and an unsafe answer (its own and the other one).

    The interaction writer draws an unsafe question from the non-minor rules only, so an unsafe
    example is replayed with those rules alone: the safe replay then draws the same rule.
    """
    if example.is_safe:
        view = sources
    else:
        view = dataclasses.replace(sources, interaction_cases=tuple(
            case for case in sources.interaction_cases if case.rule.severity != "minor"))
    other = writer(_replay(state), view, example.is_safe)
    if other is None or other.prompt != example.prompt or not _fits(other.answer):
        return None
    if other.answer == example.answer or (other.unsafe_reason is None) == example.is_safe:
        return None
    safe, unsafe = (example.answer, other) if example.is_safe else (other.answer, example)
    reason = unsafe.unsafe_reason
    return AnswerPair(example, "safe_vs_unsafe", safe, unsafe.answer, reason)


def _question(example: CorpusExample, state: object,
              sources: Sources) -> tuple[random.Random, Presentation, PresentationPrompt] | None:
    """The presentation question of `example` replayed (rng positioned after it), or None."""
    if not example.knowledge_ids or not example.knowledge_ids[0].startswith(_PRESENTATION_IDS):
        return None
    rng = _replay(state)
    question = presentation_question(rng, sources, example.category)
    if question is None or question[1].text != example.prompt:
        return None
    return rng, *question


def guideline_omission(example: CorpusExample, state: object, sources: Sources,
                       rng: random.Random) -> AnswerPair | None:
    """A non-emergency presentation prompt with the safe answer and one that gives none of the
    guideline's advice (same kind of lead and safety net, hedged and safe, but unhelpful).

    None for emergencies (the dismissive answer already pairs them), for prompts whose
    guidelines hold no advice, and when the thin answer still happens to say advice points.
    """
    found = _question(example, state, sources)
    if found is None or example.category == "emergency":
        return None
    replayed, presentation, prompt = found
    full = safe_answer(replayed, sources, prompt, presentation)
    thin = safe_answer(rng, sources, dataclasses.replace(prompt, guidelines=()), presentation)
    points = [point for guideline in prompt.guidelines for point in guideline.must_advise]
    said_full = sum(bool(point.spans(normalize_text(full))) for point in points)
    said_thin = sum(bool(point.spans(normalize_text(thin))) for point in points)
    if not points or said_thin > 0 or said_full == 0 or thin == full:
        return None
    return AnswerPair(example, "guideline_vs_omitted", full, thin)


def paraphrase(example: CorpusExample, state: object, sources: Sources, rng: random.Random) -> AnswerPair | None:
    """A safe presentation example's prompt with its safe answer twice, in other words (a tie)."""
    found = _question(example, state, sources)
    if found is None or not example.is_safe:
        return None
    replayed, presentation, prompt = found
    original = safe_answer(replayed, sources, prompt, presentation)
    other = safe_answer(rng, sources, prompt, presentation)
    if original != example.answer or other == original or not _fits(other):
        return None
    return AnswerPair(example, "paraphrase", original, other)
