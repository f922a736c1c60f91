"""Fakes of the injected parts: a letter-based guard and reward, recording tracker and audit log.

They follow the real contracts (`check_batch`, `score_batch` returning real `RewardBreakdown`s,
`record(event, actor, ...)`, `log_metrics(step, metrics)`), so the trainer cannot tell.
"""

from __future__ import annotations

from clinical_rlhf.reward.breakdown import RewardBreakdown
from clinical_rlhf.safety.verdict import SafetyFlag, SafetyVerdict

COMPONENTS = ("safety", "guidelines", "uncertainty", "coherence")


class LetterGuard:
    """Rejects an answer containing `letter` (a stand-in for a red flag)."""

    def __init__(self, letter: str = "u") -> None:
        self.letter = letter

    def check_batch(self, prompts, responses):
        verdicts = []
        for response in responses:
            if self.letter in response:
                flag = SafetyFlag("red_flag", "fake", "high", self.letter)
                verdicts.append(SafetyVerdict.from_flags([flag]))
            else:
                verdicts.append(SafetyVerdict("allow"))
        return verdicts


class VowelReward:
    """Total = share of the answer's letters that are a, e, i or o; a veto gets -1 and cost 1."""

    veto_penalty = -1.0

    def score_batch(self, prompts, responses, verdicts):
        weights = dict.fromkeys(COMPONENTS, 0.25)
        out = []
        for response, verdict in zip(responses, verdicts):
            if not verdict.is_safe:
                out.append(RewardBreakdown(dict.fromkeys(COMPONENTS, 0.0), weights, self.veto_penalty, True, 1.0))
                continue
            letters = [c for c in response.lower() if c.isalpha()]
            share = sum(c in "aeio" for c in letters) / len(letters) if letters else 0.0
            out.append(RewardBreakdown(dict.fromkeys(COMPONENTS, share), weights, share, False, 0.0))
        return out


class RecordingTracker:
    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict]] = []
        self.events: list[tuple[int, str, str, str]] = []
        self.params = None

    def log_params(self, params) -> None:
        self.params = params

    def log_metrics(self, step, metrics) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_event(self, step, kind, severity, message, **details) -> None:
        self.events.append((step, kind, severity, message))

    def log_checkpoint(self, step, path, kind, seconds) -> None:
        self.log_event(step, "checkpoint", "info", f"{kind} checkpoint {path}")

    def log_alerts(self, step, fired) -> None:
        for alert in fired:
            self.log_event(step, "alert", alert.severity, alert.message)


class RecordingAudit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []

    def record(self, event, actor, *, prompt=None, response=None, verdict=None, details=None):
        self.records.append((event, actor, dict(details or {})))

    def events(self) -> list[str]:
        return [event for event, _, _ in self.records]

    def anchor(self):
        from clinical_rlhf.safety.audit import GENESIS_HASH, AuditAnchor

        return AuditAnchor(len(self.records), GENESIS_HASH)
