"""One evaluation from start to files: both policies answer, the results are summarised and
compared, and written as evaluation.json and evaluation.html.

`evaluation.json` holds everything the page shows and more: the settings, per-policy summaries
(each component and the total with bootstrap intervals, the unsafe ratio, KL, missing-EOS),
the paired comparison, the conversation-level results, the expert agreement and one row per
prompt with every answer, its score, verdict and flags.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clinical_rlhf.evaluation.ab import (
    Sampling,
    StatsSettings,
    compare,
    conversation_summary,
    rows,
    run_policy,
    summarise,
)
from clinical_rlhf.evaluation.html import render_evaluation
from clinical_rlhf.evaluation.items import EvalItem
from clinical_rlhf.evaluation.judging import headline as judge_headline
from clinical_rlhf.evaluation.judging import judge_section
from clinical_rlhf.evaluation.suite_scoring import score_suite
from clinical_rlhf.monitoring.runfiles import json_safe, utc_now_iso

if TYPE_CHECKING:
    from clinical_rlhf.evaluation.policies import Policy

JSON_FILE = "evaluation.json"
HTML_FILE = "evaluation.html"
LABELS = ("A", "B")


def stats_settings(cfg) -> StatsSettings:
    ev = cfg.evaluation
    return StatsSettings(resamples=ev.bootstrap_resamples, confidence=ev.confidence_level, seed=ev.seed,
                         tie_epsilon=ev.tie_epsilon, test=ev.significance_test)


def evaluate_policies(cfg, bundle, guard, reward_fn, items: Sequence[EvalItem], policy_a: Policy,
                      policy_b: Policy | None = None, *, agreement: dict | None = None,
                      progress: Callable[[int], None] | None = None, judges: Sequence = (),
                      suite=None, suite_judge=None) -> dict[str, object]:
    """Run A (and B) on `items` and return the evaluation as a JSON-ready dict. `judges`
    (`evaluation.judges`) judge every answer apart from the reward; `suite` (its items are
    `items`) is graded by `suite_judge`, the llm judge."""
    from clinical_rlhf.evaluation.policies import PolicySwitch, check_compatible

    ev = cfg.evaluation
    settings = stats_settings(cfg)
    sampling = Sampling.from_config(cfg, bundle)
    switch = PolicySwitch(bundle)
    policies = [policy for policy in (policy_a, policy_b) if policy is not None]
    for policy in policies:
        check_compatible(policy, cfg, switch.fingerprint)
    runs = []
    for policy in policies:
        with switch.active(policy):
            runs.append(run_policy(bundle, policy.name, items, guard, reward_fn, sampling=sampling,
                                   samples=ev.samples_per_prompt, seed=ev.seed,
                                   escalate_is_unsafe=cfg.safety.escalate_is_unsafe,
                                   with_kl=not policy.is_reference, kl_estimator=cfg.training.ppo.kl_estimator,
                                   progress=progress))
    main = np.array([i for i, item in enumerate(items) if item.source != "conversation"], dtype=int)
    conversations = np.array([i for i, item in enumerate(items) if item.source == "conversation"], dtype=int)
    labels = LABELS[:len(runs)]
    result: dict[str, object] = {
        "created": utc_now_iso(), "model": cfg.model.name,
        "policies": {label: policy.describe() for label, policy in zip(labels, policies)},
        "settings": {"samples_per_prompt": ev.samples_per_prompt, "seed": ev.seed,
                     "bootstrap_resamples": ev.bootstrap_resamples, "confidence_level": ev.confidence_level,
                     "significance_test": ev.significance_test, "tie_epsilon": ev.tie_epsilon,
                     "temperature": sampling.temperature, "top_p": sampling.top_p,
                     "max_new_tokens": sampling.max_new_tokens, "escalate_is_unsafe": cfg.safety.escalate_is_unsafe},
        "prompts": {"evaluated": int(main.size), "conversations": int(conversations.size),
                    "sources": sorted({item.source for item in items})},
        "summary": {label: summarise(run, main, settings) for label, run in zip(labels, runs)} if main.size else {},
        "comparison": compare(runs[0], runs[1], main, settings) if len(runs) == 2 and main.size else None,
        "conversations": None,
        "agreement": agreement,
        "seconds": {label: run.seconds for label, run in zip(labels, runs)},
        "rows": rows(items, runs, labels),
    }
    if conversations.size:
        section: dict[str, object] = {label: conversation_summary(run, items, settings)
                                      for label, run in zip(labels, runs)}
        if len(runs) == 2:
            section["comparison"] = compare(runs[0], runs[1], conversations, settings)
        result["conversations"] = section
    if judges:
        result["judges"], verdicts = judge_section(judges, items, runs, labels, np.arange(len(items)), settings,
                                                   ev.max_disagreements)
        for name, per_run in verdicts.items():
            _attach(result["rows"], runs, labels, [[v.to_dict() for v in run] for run in per_run], "judges", name)
    if suite is not None:
        result["suite"], outcomes = score_suite(suite, runs, labels, suite_judge, settings, ev.llm_judge.rubric_dir)
        _attach(result["rows"], runs, labels, outcomes, "suite")
    return result


def _attach(table: list[dict], runs, labels, per_run, key: str, name: str | None = None) -> None:
    """Put each run's per-answer values (run order) under `key` (and `name`) of that answer in the rows."""
    for label, run, values in zip(labels, runs, per_run):
        for answer, value in zip(run.answers, values):
            target = table[answer.item][label][answer.sample]
            if name is None:
                target[key] = value
            else:
                target.setdefault(key, {})[name] = value


def headline_metrics(result: dict) -> dict[str, float]:
    """The numbers worth a time series, for the tracker: policy A's means, the A/B outcome, the
    conversation-level safety and the expert agreement. All keys are under `eval/`, so none of
    them overwrites a training series."""
    metrics: dict[str, float] = {}
    summary = result.get("summary", {}).get("A")
    if summary:
        for name, estimate in summary["components"].items():
            metrics[f"eval/reward/{name}/mean"] = estimate["value"]
        metrics["eval/safety/unsafe_ratio"] = summary["unsafe_ratio"]["value"]
        metrics["eval/kl"] = summary["kl"]
    comparison = result.get("comparison")
    if comparison:
        total = comparison["total"]
        metrics |= {"eval/ab/win_rate": total["win_rate"]["value"], "eval/ab/tie_rate": total["tie_rate"],
                    "eval/ab/mean_difference": total["mean_difference"]["value"], "eval/ab/p_value": total["p_value"]}
    conversations = (result.get("conversations") or {}).get("A") or {}
    if "red_flag_earlier" in conversations:
        earlier = conversations["red_flag_earlier"]
        metrics["eval/conversation/unsafe_ratio"] = earlier["unsafe_ratio"]["value"]
        metrics["eval/conversation/flag_caught_ratio"] = earlier["flag_caught_ratio"]
    if "red_flag_denied" in conversations:
        metrics["eval/conversation/false_alarm_ratio"] = conversations["red_flag_denied"]["false_alarm_ratio"]
    agreement = result.get("agreement") or {}
    if "agreement" in agreement:
        metrics["eval/expert_agreement"] = agreement["agreement"]["value"]
        metrics["eval/expert_agreement_decisive"] = agreement["decisive_agreement"]
        metrics["eval/expert_kappa"] = agreement["kappa"]
    if result.get("judges"):
        metrics |= judge_headline(result["judges"])
    suite = result.get("suite")
    if suite:
        summary = suite["summary"].get("A", {})
        key = "score" if "score" in summary else "unsafe_ratio"
        metrics[f"eval/suite/{suite['format']}/{key}"] = summary[key]["value"]
    return {key: float(value) for key, value in metrics.items() if value is not None and not math.isnan(value)}


def write_json(result: dict, directory: Path, name: str = JSON_FILE) -> Path:
    """Strict JSON (NaN written as null), replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(json_safe(result), indent=2, allow_nan=False, default=str), encoding="utf-8")
    temporary.replace(path)
    return path


def write_outputs(result: dict, directory: Path) -> tuple[Path, Path]:
    """evaluation.json and evaluation.html in `directory`."""
    json_path = write_json(result, directory)
    html_path = directory / HTML_FILE
    temporary = html_path.with_name(html_path.name + ".tmp")
    temporary.write_text(render_evaluation(result), encoding="utf-8")
    temporary.replace(html_path)
    return json_path, html_path
