"""Judges of an answer that are kept apart from the training reward (`evaluate --judge NAME`).

    guard    the training guard itself: the training signal, labelled as such
    holdout  a guard built only from `safety.holdout_knowledge`, which the training guard never
             saw: did the policy learn safe behaviour, or the surface of its guard?
    llm      a language model grading the written clinical rubrics (`llm_judge.py`)

Every judge gives each answer a `JudgeVerdict` (`judge_verdict.py`): `safe`, `unsafe` or `unparsable` (the llm judge's
reply could not be read: counted as such, never as safe), a score in [0, 1] (1 = safe) and the
reasons. This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.evaluation.judge_verdict import JudgeVerdict
from clinical_rlhf.evaluation.llm_judge import JudgementCache, LLMJudge
from clinical_rlhf.evaluation.rubrics import load_rubrics
from clinical_rlhf.knowledge import load_knowledge
from clinical_rlhf.knowledge.holdout import only_entries
from clinical_rlhf.safety import SafetyGuard

JUDGES = ("guard", "holdout", "llm")


class GuardJudge:
    """A `SafetyGuard` as a judge: unsafe when it vetoes (or escalates, with `escalate_is_unsafe`)."""

    def __init__(self, name: str, guard, *, training_signal: bool, escalate_is_unsafe: bool = False) -> None:
        self.name = name
        self.guard = guard
        self.training_signal = training_signal
        self.escalate_is_unsafe = escalate_is_unsafe

    def describe(self) -> dict[str, object]:
        knowledge = self.guard.knowledge
        return {"name": self.name, "training_signal": self.training_signal,
                "knowledge": {"red_flags": len(knowledge.red_flags), "interactions": len(knowledge.interactions),
                              "contraindications": len(knowledge.contraindications),
                              "dose_limited_drugs": sum(d.max_daily_mg is not None or d.max_single_mg is not None
                                                        for d in knowledge.drugs)}}

    def judge_batch(self, items, responses: Sequence[str]) -> list[JudgeVerdict]:
        verdicts = []
        for item, response in zip(items, responses):
            verdict = item.verdict(self.guard, response)
            unsafe = not verdict.is_safe or (self.escalate_is_unsafe and verdict.action == "escalate")
            fired = [f.rule_id for f in verdict.flags if f.action != "allow"]
            details: dict[str, object] = {"action": verdict.action}
            if not self.training_signal:  # how many prompts the held-out knowledge is about at all
                details["question_red_flags"] = self._question_red_flags(item)
            verdicts.append(JudgeVerdict("unsafe" if unsafe else "safe", 0.0 if unsafe else 1.0, tuple(fired),
                                         details))
        return verdicts

    def _question_red_flags(self, item) -> list[str]:
        """Red flags of this judge's knowledge that the question (every user turn) presents."""
        if item.is_conversation:
            verdict = self.guard.check_conversation_prompt([dict(turn) for turn in item.messages])
        else:
            verdict = self.guard.check_prompt(item.question)
        return sorted({f.rule_id for f in verdict.flags if f.category == "red_flag"})

    def close(self) -> None:
        pass


def build_judges(cfg, names: Sequence[str], training_guard) -> list:
    """The judges `names` asks for, in that order (each once). `training_guard`: the guard the
    policy was trained against (built from the knowledge without `safety.holdout_knowledge`)."""
    unknown = [name for name in names if name not in JUDGES]
    if unknown:
        raise ConfigError(f"unknown judge {unknown[0]!r}; choose among {', '.join(JUDGES)} (--judge NAME, repeatable)")
    judges: list = []
    for name in dict.fromkeys(names):
        if name == "guard":
            judges.append(GuardJudge("guard", training_guard, training_signal=True,
                                     escalate_is_unsafe=cfg.safety.escalate_is_unsafe))
        elif name == "holdout":
            judges.append(holdout_judge(cfg))
        else:
            judges.append(llm_judge(cfg))
    return judges


def holdout_judge(cfg) -> GuardJudge:
    if not cfg.safety.holdout_knowledge:
        raise ConfigError("the holdout judge needs safety.holdout_knowledge: the knowledge entries the training "
                          "guard must not see (e.g. --set 'safety.holdout_knowledge=[\"red_flag:stroke\"]'), "
                          "set before training")
    knowledge = only_entries(load_knowledge(cfg.safety.knowledge_dir), cfg.safety.holdout_knowledge)
    return GuardJudge("holdout", SafetyGuard(knowledge=knowledge, config=cfg.safety), training_signal=False,
                      escalate_is_unsafe=cfg.safety.escalate_is_unsafe)


def llm_judge(cfg):
    settings = cfg.evaluation.llm_judge
    rubrics = load_rubrics(settings.rubrics, settings.rubric_dir)
    try:
        from clinical_rlhf.evaluation.judge_backends import build_judge_backend
    except ImportError as exc:
        raise ConfigError(f"the llm judge needs the serving extras ({exc.name} is missing): "
                          f"pip install 'clinical-rlhf[serve]'") from None
    cache_path = settings.cache_file or cfg.run_dir / "evaluation" / "judge_cache.jsonl"
    return LLMJudge(build_judge_backend(cfg, settings), rubrics, JudgementCache(cache_path, settings.cache),
                    settings.output_format)
