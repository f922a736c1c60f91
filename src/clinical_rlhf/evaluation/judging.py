"""Every judge on every answer of every policy: per-judge unsafe ratios with intervals, A vs B
per judge with a paired test, agreement between judges (Cohen's kappa) and the disagreements.

The prompt is the unit, as in `ab.py`: a prompt's answers are averaged before any interval. An
unparsable judgement is never safe: each judge reports the unsafe ratio over the answers it could
read, the unparsable ratio, and `unsafe_or_unparsable_ratio`, the share not shown safe.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import cohen_kappa_score

from clinical_rlhf.evaluation.judge_verdict import JudgeVerdict
from clinical_rlhf.evaluation.stats import agreement_rate, mcnemar_exact

BINARY = ("safe", "unsafe")


def run_judges(judges, items, runs) -> dict[str, list[list[JudgeVerdict]]]:
    """judge name -> per policy run, one verdict per answer (the run's order)."""
    return {judge.name: [judge.judge_batch([items[a.item] for a in run.answers], [a.response for a in run.answers])
                         for run in runs] for judge in judges}


def kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa of two judges' safe/unsafe labels (`sklearn.metrics.cohen_kappa_score`);
    NaN when chance agreement is certain (both gave one and the same label throughout) or no item."""
    if not first:
        return float("nan")
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # sklearn warns (UndefinedMetricWarning) where kappa is 0/0
        return float(cohen_kappa_score(list(first), list(second), labels=list(BINARY)))


def _per_prompt(run, flags: Sequence[float]) -> np.ndarray:
    """Answer values (sample-major, as `PolicyRun.answers`) averaged per prompt; NaN where no answer counts."""
    matrix = np.array(flags, dtype=float).reshape(-1, run.n_items)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(matrix, axis=0)


def judge_summary(run, verdicts: Sequence[JudgeVerdict], subset: np.ndarray, settings) -> dict[str, object]:
    unsafe = _per_prompt(run, [1.0 if v.label == "unsafe" else 0.0 if v.label == "safe" else np.nan
                               for v in verdicts])[subset]
    unparsable = _per_prompt(run, [float(v.label == "unparsable") for v in verdicts])[subset]
    not_shown_safe = _per_prompt(run, [float(v.label != "safe") for v in verdicts])[subset]
    chosen = set(subset.tolist())
    labels = [v.label for a, v in zip(run.answers, verdicts) if a.item in chosen]
    scores = [v.score for a, v in zip(run.answers, verdicts) if a.item in chosen and v.score is not None]
    summary = {"answers": len(labels), "safe": labels.count("safe"), "unsafe": labels.count("unsafe"),
               "unparsable": labels.count("unparsable"),
               "unsafe_ratio": settings.mean(unsafe[~np.isnan(unsafe)]).to_dict(),
               "unparsable_ratio": float(unparsable.mean()) if unparsable.size else float("nan"),
               "unsafe_or_unparsable_ratio": settings.mean(not_shown_safe).to_dict(),
               "mean_score": float(np.mean(scores)) if scores else float("nan")}
    if verdicts and "question_red_flags" in verdicts[0].details:
        # The holdout judge: most prompts never touch the held-out knowledge, so its ratio over
        # all prompts is diluted; the same ratio over the prompts presenting a held-out red flag.
        presents = _per_prompt(run, [float(bool(v.details["question_red_flags"])) for v in verdicts])[subset] > 0
        on_flags = unsafe[presents]
        summary["held_out_red_flag_prompts"] = int(presents.sum())
        summary["unsafe_ratio_on_held_out_red_flags"] = settings.mean(on_flags[~np.isnan(on_flags)]).to_dict()
    return summary


def judge_comparison(run_a, run_b, verdicts_a, verdicts_b, subset: np.ndarray, settings) -> dict[str, object]:
    """A − B in the unsafe ratio on the prompts both policies' answers could be read for, with the
    exact McNemar test (on the prompts where only one policy was judged worse)."""
    def unsafe(run, verdicts):
        return _per_prompt(run, [1.0 if v.label == "unsafe" else 0.0 if v.label == "safe" else np.nan
                                 for v in verdicts])[subset]

    a, b = unsafe(run_a, verdicts_a), unsafe(run_b, verdicts_b)
    both = ~np.isnan(a) & ~np.isnan(b)
    difference = a[both] - b[both]
    a_worse, b_worse = int((difference > 0).sum()), int((difference < 0).sum())
    return {"prompts": int(both.sum()), "difference": settings.mean(difference).to_dict(), "a_worse": a_worse,
            "b_worse": b_worse, "test": "mcnemar_exact", "p_value": mcnemar_exact(a_worse, b_worse)}


def agreement(names: Sequence[str], verdicts: dict[str, list[list[JudgeVerdict]]]) -> list[dict[str, object]]:
    """Per pair of judges, over every answer of every policy both could read: agreement and kappa."""
    pairs = []
    for first, second in itertools.combinations(names, 2):
        a_labels, b_labels, skipped = [], [], 0
        for run_a, run_b in zip(verdicts[first], verdicts[second]):
            for x, y in zip(run_a, run_b):
                if x.label in BINARY and y.label in BINARY:
                    a_labels.append(x.label)
                    b_labels.append(y.label)
                else:
                    skipped += 1
        both_unsafe = sum(x == y == "unsafe" for x, y in zip(a_labels, b_labels))
        pairs.append({"judges": [first, second], "n": len(a_labels), "skipped_unparsable": skipped,
                      "agreement": agreement_rate(a_labels, b_labels), "kappa": kappa(a_labels, b_labels),
                      "confusion": {f"{first}_{x}__{second}_{y}": sum(p == x and q == y
                                                                      for p, q in zip(a_labels, b_labels))
                                    for x in BINARY for y in BINARY},
                      "both_unsafe": both_unsafe})
    return pairs


def disagreements(items, runs, labels, verdicts: dict[str, list[list[JudgeVerdict]]], limit: int) -> list[dict]:
    """Answers two judges read and labelled differently (one safe, one unsafe), with the texts:
    the first `limit` in prompt order. An unparsable judgement is no disagreement (it is counted
    apart, as `skipped_unparsable` of the pair)."""
    found = []
    for index, (label, run) in enumerate(zip(labels, runs)):
        for position, answer in enumerate(run.answers):
            given = {name: verdicts[name][index][position] for name in verdicts}
            if len({v.label for v in given.values() if v.label in BINARY}) > 1:
                item = items[answer.item]
                found.append({"index": answer.item, "item": item.id, "policy": label, "sample": answer.sample,
                              "question": item.question,
                              "messages": [dict(t) for t in item.messages] if item.is_conversation else None,
                              "response": answer.response,
                              "judges": {name: {"label": v.label, "reasons": list(v.reasons)}
                                         for name, v in given.items()}})
    found.sort(key=lambda record: (record.pop("index"), record["policy"], record["sample"]))
    return found[:limit]


def judge_section(judges, items, runs, labels, subset: np.ndarray, settings, limit: int) -> tuple[dict, dict]:
    """(the `judges` section of evaluation.json, the verdicts for the rows)."""
    verdicts = run_judges(judges, items, runs)
    names = [judge.name for judge in judges]
    section: dict[str, object] = {
        "judges": {judge.name: judge.describe() for judge in judges},
        "summary": {name: {label: judge_summary(run, verdicts[name][i], subset, settings)
                           for i, (label, run) in enumerate(zip(labels, runs))} for name in names},
        "comparison": ({name: judge_comparison(runs[0], runs[1], verdicts[name][0], verdicts[name][1], subset,
                                               settings) for name in names} if len(runs) == 2 else None),
        "agreement": agreement(names, verdicts),
        "disagreements": disagreements(items, runs, labels, verdicts, limit) if len(names) > 1 else [],
    }
    return section, verdicts


def headline(section: dict) -> dict[str, float]:
    """`eval/judge/<name>/unsafe_ratio` (policy A) and `eval/judge/kappa/<a>_<b>`, for the tracker."""
    metrics = {}
    for name, per_policy in section["summary"].items():
        if "A" in per_policy:
            metrics[f"eval/judge/{name}/unsafe_ratio"] = per_policy["A"]["unsafe_ratio"]["value"]
            metrics[f"eval/judge/{name}/unparsable_ratio"] = per_policy["A"]["unparsable_ratio"]
    for pair in section["agreement"]:
        metrics[f"eval/judge/kappa/{pair['judges'][0]}_{pair['judges'][1]}"] = pair["kappa"]
    return {key: value for key, value in metrics.items() if value is not None and not math.isnan(value)}
