"""The multi-objective reward: the four rule-based objectives, their weighted combination and the
hallucination penalty, per answer, with a full breakdown.

    reward = MultiObjectiveReward.from_config(cfg)
    verdicts = guard.check_batch(prompts, responses)
    breakdowns = reward.score_batch(prompts, responses, verdicts)
    metrics = aggregate_breakdowns(breakdowns)        # reward/total/mean, reward/safety/mean, ...

With `reward.learned_model` set, a trained preference reward model (`reward/learned.py`) scores
every allowed answer too: its `learned` component in [0, 1], weighted by `reward.learned_weight`,
is added to the rule-based total and logged like the others.

A vetoed answer (verdict `reject`) is never scored by the objectives nor by the learned model: its
total is exactly `reward.veto_penalty` and its cost 1.0. Needs no torch unless the learned model
is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from clinical_rlhf.config import Config, RewardConfig
from clinical_rlhf.knowledge import KnowledgeBase, load_knowledge
from clinical_rlhf.knowledge.guidelines import Guideline, load_guidelines, load_phrase_sets
from clinical_rlhf.knowledge.holdout import only_entries, training_knowledge
from clinical_rlhf.reward.breakdown import RewardBreakdown
from clinical_rlhf.reward.coherence import medical_vocabulary, score_coherence_batch
from clinical_rlhf.reward.combine import COMPONENTS, apply_penalty, combine, validate_weights
from clinical_rlhf.reward.context import Phrasebook, ScoringContext
from clinical_rlhf.reward.drug_mentions import DrugIndex, reading_mentions
from clinical_rlhf.reward.guideline_score import score_guidelines_batch
from clinical_rlhf.reward.hallucination import HallucinationChecker
from clinical_rlhf.reward.presentation import Presentation, PresentationReader
from clinical_rlhf.reward.safety_score import escalation_level, score_safety_batch
from clinical_rlhf.reward.text import Analysed
from clinical_rlhf.reward.triage_score import question_need, with_triage
from clinical_rlhf.reward.uncertainty_score import score_uncertainty_batch
from clinical_rlhf.safety.advice import read_advice
from clinical_rlhf.safety.guard import SafetyGuard
from clinical_rlhf.safety.reading import TextReading
from clinical_rlhf.safety.triage import AdvisedCare
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

_PROMPT_CACHE_SIZE = 4096


class LearnedScorer(Protocol):
    """What the `learned` component needs: answers -> scores in [0, 1] (`reward.learned.LearnedReward`)."""

    def score_batch(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...


class MultiObjectiveReward:
    """Scores answers on safety, guideline adherence, uncertainty and coherence."""

    def __init__(self, reward_cfg: RewardConfig, *, knowledge: KnowledgeBase | None = None,
                 guidelines: tuple[Guideline, ...] | None = None, learned: LearnedScorer | None = None) -> None:
        """`learned`: the `learned` component's scorer; by default loaded from `reward.learned_model`
        when that is set (`LearnedReward.load`: torch is imported only then)."""
        self.cfg = reward_cfg
        self.weights = validate_weights(reward_cfg.weights.model_dump())
        if learned is None and reward_cfg.learned_model is not None:
            from clinical_rlhf.reward.learned import LearnedReward

            learned = LearnedReward.load(reward_cfg.learned_model)
        self.learned = learned
        self.knowledge = knowledge if knowledge is not None else load_knowledge()
        directory = self.knowledge.directory
        self.guidelines = guidelines if guidelines is not None else load_guidelines(directory)
        self.reader = PresentationReader(self.guidelines, self.knowledge.red_flags)
        self.matcher = self.reader.matcher
        # A knowledge override may bring its own guidelines without the escalation wordings.
        self.phrasebook = Phrasebook({**load_phrase_sets(), **load_phrase_sets(directory)})
        self.index = DrugIndex(self.knowledge)
        self.medical_stems = medical_vocabulary(self.guidelines, self.knowledge)
        self.checker = HallucinationChecker(self.index, reward_cfg.uncertainty_estimation.consistency_threshold)
        self._prompts: dict[tuple[str, frozenset[str]], tuple[Analysed, Presentation]] = {}
        self._questions: dict[str, frozenset[str] | None] = {}
        self._guard: SafetyGuard | None = None

    @property
    def _component_names(self) -> tuple[str, ...]:
        return COMPONENTS + (("learned",) if self.learned is not None else ())

    @property
    def _breakdown_weights(self) -> dict[str, float]:
        """The four weights, and `learned`'s (`reward.learned_weight`) when it is on."""
        extra = {"learned": float(self.cfg.learned_weight)} if self.learned is not None else {}
        return dict(self.weights) | extra

    @classmethod
    def from_config(cls, cfg: Config) -> MultiObjectiveReward:
        """The training reward: like the training guard, blind to `safety.holdout_knowledge`, so the
        holdout judge measures knowledge that no part of the training signal held."""
        directory, holdout = cfg.safety.knowledge_dir, cfg.safety.holdout_knowledge
        if not holdout:
            return cls(cfg.reward, knowledge=load_knowledge(directory), guidelines=load_guidelines(directory))
        # A guideline listing a held-out red flag goes too: its own triggers describe the same presentation.
        held_out = {flag.id for flag in only_entries(load_knowledge(directory), holdout).red_flags}
        guidelines = tuple(g for g in load_guidelines(directory) if not held_out.intersection(g.red_flags))
        return cls(cfg.reward, knowledge=training_knowledge(directory, holdout), guidelines=guidelines)

    def _prompt(self, prompt: str, guard_flags: frozenset[str] = frozenset()) -> tuple[Analysed, Presentation]:
        """Analysed prompt and what it presents, cached: PPO scores several answers per prompt,
        and evaluation sets repeat prompts. `guard_flags`: red-flag ids of the guard's verdict on
        the prompt, which may match guidelines the reward's own reading missed."""
        key = (prompt, guard_flags)
        cached = self._prompts.get(key)
        if cached is None:
            if len(self._prompts) >= _PROMPT_CACHE_SIZE:
                self._prompts.clear()
            cached = self._prompts[key] = (Analysed(prompt), self.reader.read(prompt, guard_flags))
        return cached

    def clear_prompt_cache(self) -> None:
        """Forget the prompts read so far (benchmarks of new prompts; memory is bounded anyway)."""
        self._prompts.clear()
        self._questions.clear()

    def score(self, prompt: str, response: str, verdict: SafetyVerdict, **extra) -> RewardBreakdown:
        """One answer; `extra` as in `score_batch`, one value each."""
        batched = {key: [value] for key, value in extra.items() if value is not None}
        return self.score_batch([prompt], [response], [verdict], **batched)[0]

    def score_batch(self, prompts: Sequence[str], responses: Sequence[str], verdicts: Sequence[SafetyVerdict],
                    *, samples: Sequence[Sequence[str]] | None = None,
                    model_uncertainty: Sequence[float] | None = None,
                    ref_logprobs: Sequence[float] | None = None) -> list[RewardBreakdown]:
        """Breakdowns of a batch of answers.

        samples: per answer, other answers sampled for the same prompt (self-consistency check;
            `consistency.group_samples` builds them from a batch with several samples per prompt).
        model_uncertainty: per answer, the model's uncertainty in [0, 1] (`estimate_uncertainty`).
        ref_logprobs: per answer, the reference model's mean per-token log-probability (nats)."""
        n = len(prompts)
        for name, given in (("responses", responses), ("verdicts", verdicts), ("samples", samples),
                            ("model_uncertainty", model_uncertainty), ("ref_logprobs", ref_logprobs)):
            if given is not None and len(given) != n:
                raise ValueError(f"score_batch: {name} has {len(given)} items, prompts has {n}")
        scored = [i for i in range(n) if verdicts[i].is_safe]
        results = self._score_allowed(
            [prompts[i] for i in scored], [responses[i] for i in scored], [verdicts[i] for i in scored],
            samples=[samples[i] for i in scored] if samples is not None else None,
            model_uncertainty=[model_uncertainty[i] for i in scored] if model_uncertainty is not None else None,
            ref_logprobs=[ref_logprobs[i] for i in scored] if ref_logprobs is not None else None)
        breakdowns: list[RewardBreakdown | None] = [None] * n
        for i, breakdown in zip(scored, results):
            breakdowns[i] = breakdown
        for i in range(n):
            if breakdowns[i] is None:
                breakdowns[i] = self._vetoed(prompts[i], verdicts[i])
        return breakdowns  # type: ignore[return-value]

    def _vetoed(self, prompt: str, verdict: SafetyVerdict) -> RewardBreakdown:
        matched = tuple(g.id for g in self._prompt(prompt, _guard_flags(verdict))[1].guidelines)
        return RewardBreakdown(components={name: 0.0 for name in self._component_names},
                               weights=self._breakdown_weights, total=float(self.cfg.veto_penalty), vetoed=True,
                               cost=1.0, matched_guidelines=matched,
                               hallucination_flags=tuple(f for f in verdict.flags if f.category == "hallucination"))

    def _score_allowed(self, prompts, responses, verdicts, *, samples, model_uncertainty,
                       ref_logprobs) -> list[RewardBreakdown]:
        cfg, book = self.cfg, self.phrasebook
        contexts = []
        topics = []
        answers = []
        for prompt, response, verdict in zip(prompts, responses, verdicts):
            analysed_prompt, presentation = self._prompt(prompt, _guard_flags(verdict))
            ctx = ScoringContext(analysed_prompt, Analysed(response), presentation.guidelines, verdict,
                                 red_flags=presentation.red_flags)
            ctx.need = question_need(ctx)
            ctx.advised = self._advised(ctx)
            answer = self._answer_reading(verdict, response)
            answers.append(answer)
            ctx.intent, ctx.stance = self._proposal_stance(prompt, verdict, answer)
            contexts.append(ctx)
            topics.append(presentation.topic)
        safety = score_safety_batch(contexts, book)
        adherence = score_guidelines_batch([c.guidelines for c in contexts], [c.response for c in contexts],
                                           cfg.unmatched_guideline_score, book.immediacy)
        uncertainty = score_uncertainty_batch(contexts, book, model_uncertainty, cfg.model_uncertainty_weight)
        # An answer giving the matched guideline's advice (or escalating an urgent prompt) is on
        # topic even when it shares no word with the prompt ("Call 999 now." to "my chest hurts").
        on_topic = [a.covered > 0 or (c.urgency >= 2 and escalation_level(c, book) >= 2)
                    for a, c in zip(adherence, contexts)]
        coherence = score_coherence_batch([c.prompt for c in contexts], [c.response for c in contexts],
                                          max_words=cfg.max_answer_words, on_topic_hints=on_topic,
                                          topic_stems=topics,
                                          medical_stems=self.medical_stems,
                                          ref_logprobs=ref_logprobs, ref_weight=cfg.reference_logprob_weight)
        # Only answers the guard allowed reach this point: a vetoed answer never gets a learned score.
        learned = self.learned.score_batch(prompts, responses) if self.learned is not None else None
        results = []
        for i, ctx in enumerate(contexts):
            guidelines = with_triage(adherence[i].score, ctx.need, ctx.advised, cfg.triage)
            components = {"safety": safety[i], "guidelines": guidelines,
                          "uncertainty": uncertainty[i], "coherence": coherence[i]}
            flags = self._hallucinations(ctx, answers[i], samples[i] if samples is not None else None)
            total = combine(components, self.weights, cfg.combination, cfg.safety_gate)
            if learned is not None:
                # On top of the rule-based total, before the hallucination penalty (which can
                # then take back the learned bonus too, as it caps at the whole total).
                components["learned"] = learned[i]
                total += cfg.learned_weight * learned[i]
            total, charged = apply_penalty(total, cfg.hallucination_penalty * len(flags))
            results.append(RewardBreakdown(
                components=components, weights=self._breakdown_weights, total=total, vetoed=False, cost=0.0,
                matched_guidelines=adherence[i].matched, hallucination_flags=flags,
                penalties={"hallucination": charged}, missing_advice=adherence[i].missing,
                violated_advice=adherence[i].violated))
        return results

    def _advised(self, ctx: ScoringContext) -> AdvisedCare:
        """The care the answer advises: the guard's reading on the verdict, else the same reader
        run here (labelled verdicts, verdicts built by hand) over a guard on the reward's knowledge."""
        if ctx.verdict.advised is not None:
            return ctx.verdict.advised
        return read_advice(self._own_guard(), ctx.response.raw, ctx.prompt_red_flags)

    def _proposal_stance(self, prompt: str, verdict: SafetyVerdict, answer: TextReading) -> tuple[bool, str]:
        """(intent in the question, the answer's stance towards what the question proposes), read by
        the guard's own dialogue reader over the guard's readings of both texts: `neither` when the
        question proposes no medicine use and shows no intent (`DialogueReader.proposal`)."""
        triage = verdict.triage
        intent = bool(triage is not None and triage.intents)
        proposed = self._proposed(prompt, verdict)
        if proposed is None and not intent:
            return intent, "neither"
        stance = self._own_guard().dialogue.stance(answer.normalised, proposed or frozenset(), list(answer.drugs))
        return intent, stance.stance

    def _proposed(self, prompt: str, verdict: SafetyVerdict) -> frozenset[str] | None:
        """The drugs the question names when it proposes a use of them (`DialogueReader.proposal`),
        None when it proposes nothing; read once per prompt from the verdict's reading of the question,
        or through the guard's reader when the verdict carries none (bounded like the prompt cache)."""
        if prompt in self._questions:
            return self._questions[prompt]
        guard = self._own_guard()
        question = verdict.reading.question if verdict.reading is not None else None
        if question is None or question.original != prompt:
            question = guard.reader.read(prompt)
        drugs = list({mention.drug.name: mention.drug for mention in question.drugs}.values())
        proposes = bool(drugs) and guard.dialogue.proposal(question.normalised.text, drugs) is not None
        if len(self._questions) >= _PROMPT_CACHE_SIZE:
            self._questions.clear()
        proposed = self._questions[prompt] = frozenset(drug.name for drug in drugs) if proposes else None
        return proposed

    def _own_guard(self) -> SafetyGuard:
        """A guard over the reward's knowledge, for what a verdict without the guard's readings
        lacks (built on first use: the guard's phrase indexes are shared per knowledge base)."""
        if self._guard is None:
            self._guard = SafetyGuard(knowledge=self.knowledge)
        return self._guard

    def _answer_reading(self, verdict: SafetyVerdict, response: str) -> TextReading:
        """The guard's reading of the answer, handed on with its verdict; read here through the
        guard's own reader (`SafetyGuard.reader`) when the verdict has none (built by hand, loaded
        from disk) or was given for another text, so a score never depends on who read it."""
        reading = verdict.reading.answer if verdict.reading is not None else None
        if reading is not None and reading.original == response:
            return reading
        return self._own_guard().reader.read(response)

    def _hallucinations(self, ctx: ScoringContext, answer: TextReading,
                        samples: Sequence[str] | None) -> tuple[SafetyFlag, ...]:
        """Our checks plus any hallucination flags the guard raised itself (deduplicated by rule).
        The drugs the answer names are the guard's reading of it (`reading_mentions`)."""
        dose_flagged = any(f.category == "dosage" and f.source == "response" for f in ctx.verdict.flags)
        mentions = reading_mentions(answer, ctx.response.normalized)
        ours = self.checker.check(ctx.response, dose_flagged, samples, mentions)
        guard = tuple(f for f in ctx.verdict.flags if f.category == "hallucination")
        seen = {f.rule_id for f in guard}
        return guard + tuple(f for f in ours if f.rule_id not in seen or not f.rule_id)


def _guard_flags(verdict: SafetyVerdict) -> frozenset[str]:
    """Red-flag ids the guard found in the prompt (empty for most verdicts)."""
    if not verdict.flags:
        return frozenset()
    return frozenset(f.subtype for f in verdict.flags if f.category == "red_flag" and f.source == "prompt")
