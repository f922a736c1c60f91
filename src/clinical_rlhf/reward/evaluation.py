"""The reward's measured quality on the project's labelled sets (`reward/evalsets/`).

Ordering set (`ordering_*.yaml`): scenarios of one prompt and several answers, each answer with
an ordinal level per component (s safety, g guidelines, u uncertainty, c coherence). Every pair
of answers of a scenario whose levels differ on a component is one test: the better answer must
score strictly higher on that component (a tie fails). Accuracy = passed / tests, per component.

Splits, from each file's top-level `split:` key:
- `alternate` (the default): scenarios alternate between `dev` (even position in their file;
  used while tuning the scorers) and `test` (odd position; its first run was reported untuned,
  then its failures were studied too);
- `tuned`: a file written as a held-out set, run once, reported, then tuned on (its first-run
  figures are in docs/reward.md; its present figures are no longer clean);
- `holdout`: written after all tuning and never tuned on; the clean numbers.

Hallucination set (`hallucination*.yaml`): answers with a planted factual error (`planted: <kind>`)
and correct answers (`planted: none`); a detection is an answer with at least one hallucination
flag. Precision, recall and F1 of the detections. `hallucination.yaml` was used to tune the checks
(dev); `hallucination_holdout.yaml` was written afterwards and never tuned on.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from clinical_rlhf.errors import InputDataError
from clinical_rlhf.reward.combine import COMPONENTS
from clinical_rlhf.reward.multi_objective import MultiObjectiveReward
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

EVALSETS = Path(__file__).resolve().parent / "evalsets"
_SHORT = {"s": "safety", "g": "guidelines", "u": "uncertainty", "c": "coherence"}
FILE_SPLITS = ("alternate", "tuned", "holdout")
SPLITS = ("dev", "test", "tuned", "holdout")


@dataclass(frozen=True)
class LabelledAnswer:
    text: str
    levels: dict[str, int]
    verdict: SafetyVerdict


@dataclass(frozen=True)
class Scenario:
    id: str
    prompt: str
    answers: tuple[LabelledAnswer, ...]
    split: str
    file: str = ""
    """The file the scenario comes from (`ordering_holdout3.yaml`)."""


@dataclass
class OrderingResult:
    passed: dict[str, int] = field(default_factory=lambda: {c: 0 for c in COMPONENTS})
    tests: dict[str, int] = field(default_factory=lambda: {c: 0 for c in COMPONENTS})
    failures: list[str] = field(default_factory=list)
    both_vetoed: int = 0
    """Labelled pairs not compared because the guard vetoed both answers (neither is scored)."""

    def accuracy(self, component: str) -> float:
        return self.passed[component] / self.tests[component] if self.tests[component] else float("nan")

    @property
    def overall(self) -> float:
        total = sum(self.tests.values())
        return sum(self.passed.values()) / total if total else float("nan")


def _verdict(raw: dict | None, where: str) -> SafetyVerdict:
    if raw is None:
        return SafetyVerdict(action="allow")
    try:
        flags = tuple(SafetyFlag(category=f["category"], subtype=f.get("subtype", "labelled"),
                                 severity=f["severity"], evidence=f.get("evidence", ""),
                                 action=f["action"]) for f in raw.get("flags", ()))
        return SafetyVerdict(action=raw["action"], flags=flags)
    except (KeyError, TypeError) as exc:
        raise InputDataError(f"{where}: verdict needs action and flags with category, severity, "
                             f"action ({exc})") from None


def _load_yaml(path: Path, key: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputDataError(f"labelled set {path} cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise InputDataError(f"labelled set {path} must hold a top-level `{key}:` list")
    return data


def _read(path: Path, key: str) -> list:
    return _load_yaml(path, key)[key]


@functools.lru_cache(maxsize=4)
def load_ordering_set(directory: Path = EVALSETS) -> tuple[Scenario, ...]:
    scenarios = []
    for path in sorted(Path(directory).glob("ordering_*.yaml")):
        data = _load_yaml(path, "scenarios")
        file_split = data.get("split", "alternate")
        if file_split not in FILE_SPLITS:
            raise InputDataError(f"labelled set {path}: `split: {file_split}` must be one of {FILE_SPLITS}")
        for position, raw in enumerate(data["scenarios"]):
            where = f"{path.name} scenario {raw.get('id', position)}"
            answers = []
            for item in raw["answers"]:
                try:
                    levels = {_SHORT[k]: int(v) for k, v in (item.get("levels") or {}).items()}
                except KeyError as exc:
                    raise InputDataError(f"{where}: unknown level key {exc}; use s, g, u or c") from None
                answers.append(LabelledAnswer(str(item["text"]), levels, _verdict(item.get("verdict"), where)))
            split = file_split if file_split != "alternate" else ("dev" if position % 2 == 0 else "test")
            scenarios.append(Scenario(raw["id"], raw["prompt"], tuple(answers), split, path.name))
    return tuple(scenarios)


def evaluate_ordering(reward: MultiObjectiveReward, scenarios: Iterable[Scenario],
                      guard=None) -> OrderingResult:
    """Pairwise ordering accuracy per component. With a `guard`, its verdicts replace the
    labelled ones (the real pipeline; pairs where it vetoes both answers are not comparable and
    are counted in `both_vetoed`); without, the labelled verdicts (default allow) are used."""
    result = OrderingResult()
    for scenario in scenarios:
        texts = [a.text for a in scenario.answers]
        prompts = [scenario.prompt] * len(texts)
        verdicts = guard.check_batch(prompts, texts) if guard is not None else [a.verdict for a in scenario.answers]
        scores = reward.score_batch(prompts, texts, verdicts)
        for component in COMPONENTS:
            for i, better in enumerate(scenario.answers):
                for j, worse in enumerate(scenario.answers):
                    if component not in better.levels or component not in worse.levels:
                        continue
                    if better.levels[component] <= worse.levels[component]:
                        continue
                    if scores[i].vetoed and scores[j].vetoed:
                        result.both_vetoed += 1
                        continue
                    result.tests[component] += 1
                    if scores[i].components[component] > scores[j].components[component]:
                        result.passed[component] += 1
                    else:
                        result.failures.append(
                            f"{scenario.id} {component}: answer {i} ({scores[i].components[component]:.3f}) "
                            f"should beat answer {j} ({scores[j].components[component]:.3f})")
    return result


@dataclass(frozen=True)
class HallucinationItem:
    prompt: str
    text: str
    planted: str
    """Kind of planted error, or `none` for a correct answer."""
    split: str = "dev"


@dataclass(frozen=True)
class DetectionResult:
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    misses: tuple[str, ...]
    false_alarms: tuple[str, ...]

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else float("nan")

    @property
    def recall(self) -> float:
        planted = self.true_positive + self.false_negative
        return self.true_positive / planted if planted else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@functools.lru_cache(maxsize=4)
def load_hallucination_set(directory: Path = EVALSETS) -> tuple[HallucinationItem, ...]:
    """Every `hallucination*.yaml` of `directory`; `split` is `holdout` for the held-out file."""
    items = []
    for path in sorted(Path(directory).glob("hallucination*.yaml")):
        split = "holdout" if "holdout" in path.name else "dev"
        items += [HallucinationItem(str(raw["prompt"]), str(raw["text"]), str(raw["planted"]), split)
                  for raw in _read(path, "answers")]
    return tuple(items)


def evaluate_hallucination(reward: MultiObjectiveReward, items: Iterable[HallucinationItem]) -> DetectionResult:
    items = list(items)
    allow = [SafetyVerdict(action="allow")] * len(items)
    found = reward.score_batch([i.prompt for i in items], [i.text for i in items], allow)
    tp = fp = fn = tn = 0
    misses, alarms = [], []
    for item, breakdown in zip(items, found):
        flagged, planted = bool(breakdown.hallucination_flags), item.planted != "none"
        if planted and flagged:
            tp += 1
        elif planted:
            fn += 1
            misses.append(f"[{item.planted}] {item.text}")
        elif flagged:
            fp += 1
            alarms.append(f"{[f.subtype + ':' + f.evidence for f in breakdown.hallucination_flags]} {item.text}")
        else:
            tn += 1
    return DetectionResult(tp, fp, fn, tn, tuple(misses), tuple(alarms))
