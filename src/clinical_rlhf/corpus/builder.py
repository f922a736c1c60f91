"""`build_corpus`: the whole corpus from a seed, balanced, labelled and split.

Each of the five categories gets an equal share of `size`, and each share gets the same
fraction of deliberately unsafe answers. Within a category the writers (see `_WRITERS`) are
mixed by fixed weights. Prompts are kept unique where the variation allows, then the split is
made per category over distinct prompt texts, so no held-out prompt appears in train.
One `random.Random(seed)` drives everything, and the knowledge is read in file order, so the
same seed and knowledge give the same corpus and fingerprint on any machine.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from clinical_rlhf.corpus.contraindications import contraindication_question
from clinical_rlhf.corpus.dosing import adult_dosing, child_dosing
from clinical_rlhf.corpus.example import CATEGORIES, Corpus, CorpusExample, Draft
from clinical_rlhf.corpus.interactions import interaction_question
from clinical_rlhf.corpus.presentation_answers import dismissive_answer, overconfident_answer, safe_answer
from clinical_rlhf.corpus.presentation_prompts import PresentationPrompt, presentation_prompt
from clinical_rlhf.corpus.sources import Presentation, Sources, load_sources

MIN_ANSWER_CHARS, MAX_ANSWER_CHARS = 180, 620
MAX_ANSWER_SENTENCES = 5
_ATTEMPTS_PER_EXAMPLE = 60
_SENTENCE_END = re.compile(r"[.?!](?:\s+|$)(?=[A-Z\"(]|$)")

Writer = Callable[[random.Random, Sources, bool], "Draft | None"]


def presentation_question(rng: random.Random, sources: Sources,
                          category: str) -> tuple[Presentation, PresentationPrompt] | None:
    """The draws a presentation writer starts with: what is presented and the question about it.

    Everything after it depends on the `unsafe` flag; `corpus.pairs` replays this part to write
    more answers to the same question."""
    presentation = rng.choice(sources.presentations[category])
    prompt = presentation_prompt(rng, sources, presentation)
    return None if prompt is None else (presentation, prompt)


def _presentation_writer(category: str) -> Writer:
    def write(rng: random.Random, sources: Sources, unsafe: bool) -> Draft | None:
        question = presentation_question(rng, sources, category)
        if question is None:
            return None
        presentation, prompt = question
        ids = tuple(dict.fromkeys((presentation.id, *(f"guideline:{g.id}" for g in prompt.guidelines),
                                   *(f"red_flag:{flag}" for flag in prompt.red_flags))))
        if not unsafe:
            return Draft(prompt.text, safe_answer(rng, sources, prompt, presentation), None, ids)
        if category == "emergency":
            return Draft(prompt.text, dismissive_answer(rng, prompt, presentation), "dismisses_red_flag", ids)
        return Draft(prompt.text, overconfident_answer(rng, sources, prompt, presentation),
                     "overconfident_no_hedging", ids)
    return write


def _condition_contraindication(rng: random.Random, sources: Sources, unsafe: bool) -> Draft | None:
    cases = [c for c in sources.condition_contraindications if c.rule.max_age_years is None]
    return contraindication_question(rng, rng.choice(cases), unsafe) if cases else None


def _age_contraindication(rng: random.Random, sources: Sources, unsafe: bool) -> Draft | None:
    cases = [*sources.age_contraindications,
             *(c for c in sources.condition_contraindications if c.rule.max_age_years is not None)]
    return contraindication_question(rng, rng.choice(cases), unsafe) if cases else None


# Category -> (writer, weight). Chronic-condition questions include "I have <condition>, can I
# take <drug>?" (the contraindication rules); dosing includes "can I give <drug> to my child?".
_WRITERS: dict[str, tuple[tuple[Writer, float], ...]] = {
    "emergency": ((_presentation_writer("emergency"), 1.0),),
    "medication_dosing": ((adult_dosing, 0.65), (child_dosing, 0.2), (_age_contraindication, 0.15)),
    "drug_interaction": ((interaction_question, 1.0),),
    "chronic_condition": ((_presentation_writer("chronic_condition"), 0.7), (_condition_contraindication, 0.3)),
    "everyday_complaint": ((_presentation_writer("everyday_complaint"), 1.0),),
}


def count_sentences(text: str) -> int:
    return len([part for part in _SENTENCE_END.split(text.strip()) if part.strip()])


def _acceptable(draft: Draft | None, category: str, sources: Sources) -> bool:
    """Length and sentence bounds; and outside the emergency category, no emergency in the prompt.

    A dosing or chronic-condition question can name an emergency by accident ("history: heart
    attack last month"); the guard and reward would then rightly expect an emergency answer,
    so such a draw is dropped and another one written.
    """
    if draft is None:
        return False
    length = len(draft.answer)
    if not (MIN_ANSWER_CHARS <= length <= MAX_ANSWER_CHARS
            and 2 <= count_sentences(draft.answer) <= MAX_ANSWER_SENTENCES):
        return False
    if category == "emergency":
        return True
    return not sources.matched_red_flags(draft.prompt) and not any(
        g.urgency in ("emergency", "urgent") for g in sources.matched_guidelines(draft.prompt))


def _write_one(rng: random.Random, sources: Sources, category: str, unsafe: bool,
               seen: set[str]) -> tuple[Draft, Writer, object]:
    """A draft of `category` with a prompt not yet used; a repeated prompt only if none is found.

    Returned with the writer that wrote it and the random state just before that writer's call,
    so the draft can be written again (`corpus.pairs` replays it with the other answer).
    """
    writers, weights = zip(*_WRITERS[category])
    fallback: tuple[Draft, Writer, object] | None = None
    for _ in range(_ATTEMPTS_PER_EXAMPLE):
        writer = rng.choices(writers, weights=weights)[0]
        state = rng.getstate()
        draft = writer(rng, sources, unsafe)
        if not _acceptable(draft, category, sources):
            continue
        if draft.prompt not in seen:
            return draft, writer, state
        fallback = fallback or (draft, writer, state)
    if fallback is None:
        raise RuntimeError(f"could not write a {category} example from the knowledge base; "
                           f"check that the knowledge files hold entries for it")
    return fallback


def _shares(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def _validate(size: int, unsafe_fraction: float, heldout_fraction: float) -> None:
    if size < len(CATEGORIES) * 10:
        raise ValueError(f"size must be at least {len(CATEGORIES) * 10} (ten per category), got {size}")
    if not 0.0 <= unsafe_fraction < 1.0:
        raise ValueError(f"unsafe_fraction must be in [0, 1), got {unsafe_fraction}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")


def build_corpus(
    size: int = 2400,
    unsafe_fraction: float = 0.25,
    heldout_fraction: float = 0.1,
    seed: int = 42,
    knowledge_dir: Path | None = None,
    trace: dict[str, tuple[Writer, object]] | None = None,
) -> Corpus:
    """Generate `size` labelled prompt/answer pairs and split off `heldout_fraction` of them.

    About `unsafe_fraction` of the answers (the same share in every category, rounded) are
    deliberately unsafe and carry `unsafe_reason`. `knowledge_dir` overrides the shipped
    knowledge files (see `load_knowledge`). Raises `ValueError` naming a bad argument.
    `trace`, when given, receives example id -> (writer, random state before its call): what
    `corpus.pairs` needs to write a second answer to the same prompt. It changes nothing drawn.
    """
    _validate(size, unsafe_fraction, heldout_fraction)
    sources = load_sources(knowledge_dir)
    rng = random.Random(seed)
    seen: set[str] = set()
    train: list[CorpusExample] = []
    heldout: list[CorpusExample] = []
    unsafe_shares = _shares(round(size * unsafe_fraction), len(CATEGORIES))
    for category, count, unsafe_count in zip(CATEGORIES, _shares(size, len(CATEGORIES)), unsafe_shares):
        flags = [True] * unsafe_count + [False] * (count - unsafe_count)
        rng.shuffle(flags)
        examples = []
        for index, unsafe in enumerate(flags, start=1):
            draft, writer, state = _write_one(rng, sources, category, unsafe, seen)
            seen.add(draft.prompt)
            example_id = f"{category}-{index:05d}"
            if trace is not None:
                trace[example_id] = (writer, state)
            examples.append(CorpusExample(
                id=example_id, category=category, prompt=draft.prompt, answer=draft.answer,
                is_safe=draft.unsafe_reason is None, unsafe_reason=draft.unsafe_reason,
                knowledge_ids=draft.knowledge_ids,
            ))
        category_train, category_heldout = _split(rng, examples, heldout_fraction)
        train += category_train
        heldout += category_heldout
    rng.shuffle(train)
    rng.shuffle(heldout)
    return Corpus(train=tuple(train), heldout=tuple(heldout), seed=seed)


def _split(rng: random.Random, examples: list[CorpusExample],
           heldout_fraction: float) -> tuple[list[CorpusExample], list[CorpusExample]]:
    """Hold out whole prompt groups (all examples sharing a prompt text) until the share is met."""
    groups: dict[str, list[CorpusExample]] = {}
    for example in examples:
        groups.setdefault(example.prompt, []).append(example)
    prompts = list(groups)
    rng.shuffle(prompts)
    target = round(len(examples) * heldout_fraction)
    held: set[str] = set()
    held_count = 0
    for prompt in prompts:
        if held_count >= target:
            break
        held.add(prompt)
        held_count += len(groups[prompt])
    return ([e for e in examples if e.prompt not in held], [e for e in examples if e.prompt in held])
