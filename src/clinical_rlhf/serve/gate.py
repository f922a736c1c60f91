"""The safety gate every served answer passes: the guard's verdicts turned into what the client gets.

- The question is checked first. Red flags (an emergency happening now) make the answer lead
  with the knowledge base's emergency advice for each flag, before the model's words.
- The answer the client would get (advice + model text) is checked. `reject`: the client gets
  the fallback instead (emergency advice first when the question has red flags) and a reason
  code; `escalate`: the answer is returned with the escalation notice appended; `allow`: as is.
- A guard failure rejects (the guard turns its own errors into a reject), so a bug can only
  cost an answer, never let one through.

The gate holds no audit log: the server records each check with the API key's id as the actor.
The server calls the `async` checks (`prompt`, `answer`, `text`): each runs in one of
`serve.guard_workers` worker processes (`guard_pool.py`), never on the event loop, so a slow
check cannot hold up `/health` or other requests. `serve.guard_timeout_seconds` bounds the wait
for a free worker and, apart, the check on its worker. A check past its limit is killed with its
worker; either way the check counts as a guard failure (a reject with a `guard_error/timeout`
flag): it costs the answer, it never lets one through.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.safety import SafetyFlag, SafetyGuard, SafetyVerdict
from clinical_rlhf.serve.guard_pool import GuardPool, GuardWorkerError
from clinical_rlhf.serve.metrics import REASONS

if TYPE_CHECKING:
    from clinical_rlhf.config import Config


@dataclass(frozen=True, slots=True)
class PromptCheck:
    verdict: SafetyVerdict
    seconds: float
    red_flags: tuple[str, ...]
    """Ids of the emergencies the question describes."""
    advice: tuple[str, ...]
    """The emergency advice for them, from the knowledge base, in flag order."""

    @property
    def guard_failed(self) -> bool:
        return self.verdict.action == "reject"


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    verdict: SafetyVerdict
    seconds: float
    checked_text: str
    """The text the guard judged (emergency advice + the model's answer)."""
    text: str
    """What the client gets: `checked_text`, the fallback, or `checked_text` + escalation notice."""
    fallback: bool
    reason_code: str | None


def reason_code(verdict: SafetyVerdict) -> str | None:
    """Machine-readable reason of a reject or escalate (one of `metrics.REASONS`); None for allow."""
    deciding = [flag for flag in verdict.flags if flag.action == verdict.action and verdict.action != "allow"]
    if not deciding:
        return None
    flag = deciding[0]
    if flag.category == "red_flag":
        return "red_flag_downplayed" if flag.rule_id.endswith(":downplayed") else "red_flag_missing_advice"
    return flag.category if flag.category in REASONS else "unsafe_answer"


def failed_check(subtype: str, reason: str) -> SafetyVerdict:
    """The verdict of a check that ran past its time limit or lost its worker: a guard failure,
    so a reject."""
    return SafetyVerdict.from_flags([SafetyFlag(category="guard_error", subtype=subtype, severity="critical",
                                                evidence=reason, rule_id="guard_error", action="reject")])


class SafetyGate:
    def __init__(self, guard: SafetyGuard, fallback_message: str, escalation_notice: str, *,
                 guard_factory: Callable[[], SafetyGuard] | None = None, workers: int = 2,
                 timeout_seconds: float = 5.0) -> None:
        """`guard_factory` (picklable; it runs in each worker process) builds the guard the async
        checks use; without it only the synchronous checks are available."""
        self.guard = guard
        self.timeout_seconds = timeout_seconds
        self.pool = GuardPool(guard_factory, workers, timeout_seconds) if guard_factory is not None else None
        self.fallback_message = fallback_message.strip()
        self.escalation_notice = escalation_notice.strip()
        for key, text in (("serve.fallback_message", self.fallback_message),
                          ("serve.escalation_notice", self.escalation_notice)):
            verdict = guard.check("", text)
            if verdict.action != "allow" or not text:
                raise ConfigError(f"{key} must be a non-empty text the safety guard allows; it "
                                  f"{'is empty' if not text else 'gets ' + verdict.action}: reword it")

    @classmethod
    def from_config(cls, cfg: Config) -> SafetyGate:
        return cls(SafetyGuard.from_config(cfg), cfg.serve.fallback_message, cfg.serve.escalation_notice,
                   guard_factory=functools.partial(SafetyGuard.from_config, cfg), workers=cfg.serve.guard_workers,
                   timeout_seconds=cfg.serve.guard_timeout_seconds)

    # -- the server's checks: in worker processes, bounded in time

    async def prompt(self, prompt: str) -> PromptCheck:
        start = time.perf_counter()
        verdict = await self._bounded("check_prompt", prompt)
        return self._prompt_check(verdict, time.perf_counter() - start)

    async def answer(self, prompt: str, prompt_check: PromptCheck, generated: str) -> AnswerCheck:
        checked = self._checked_text(prompt_check, generated)
        start = time.perf_counter()
        verdict = await self._bounded("check", prompt, checked)
        return self._answer_check(verdict, time.perf_counter() - start, checked, prompt_check)

    async def text(self, question: str, answer: str) -> SafetyVerdict:
        """`guard.check(question, answer)` (e.g. a clinician's corrected answer)."""
        return await self._bounded("check", question, answer)

    async def _bounded(self, method: str, *args: str) -> SafetyVerdict:
        """The worker's verdict; a check past its time or a dead worker is a guard failure (reject)."""
        if self.pool is None:
            raise RuntimeError("this SafetyGate was built without a guard_factory: use SafetyGate.from_config")
        try:
            return await self.pool.call(method, *args)
        except TimeoutError:
            return failed_check("timeout", f"guard check exceeded {self.timeout_seconds:g} s "
                                           f"(serve.guard_timeout_seconds)")
        except GuardWorkerError as exc:
            return failed_check("worker_failed", str(exc))

    # -- the checks themselves (synchronous: what each worker's verdict is turned into)

    def check_prompt(self, prompt: str) -> PromptCheck:
        start = time.perf_counter()
        verdict = self.guard.check_prompt(prompt)
        return self._prompt_check(verdict, time.perf_counter() - start)

    def _prompt_check(self, verdict: SafetyVerdict, seconds: float) -> PromptCheck:
        red_flags, advice = [], []
        for flag in verdict.flags:
            if flag.category != "red_flag" or flag.subtype in red_flags:
                continue
            red_flags.append(flag.subtype)
            known = self.guard.knowledge.red_flag(flag.subtype)
            if known is not None and known.advice not in advice:
                advice.append(known.advice)
        return PromptCheck(verdict, seconds, tuple(red_flags), tuple(advice))

    def check_answer(self, prompt: str, prompt_check: PromptCheck, generated: str) -> AnswerCheck:
        checked = self._checked_text(prompt_check, generated)
        start = time.perf_counter()
        verdict = self.guard.check(prompt, checked)
        return self._answer_check(verdict, time.perf_counter() - start, checked, prompt_check)

    @staticmethod
    def _checked_text(prompt_check: PromptCheck, generated: str) -> str:
        return "\n\n".join(part for part in (" ".join(prompt_check.advice), generated.strip()) if part)

    def _answer_check(self, verdict: SafetyVerdict, seconds: float, checked: str,
                      prompt_check: PromptCheck) -> AnswerCheck:
        code = reason_code(verdict)
        if verdict.action == "reject":
            return AnswerCheck(verdict, seconds, checked, self.fallback_text(prompt_check), True, code)
        text = f"{checked}\n\n{self.escalation_notice}" if verdict.action == "escalate" else checked
        return AnswerCheck(verdict, seconds, checked, text, False, code)

    def fallback_text(self, prompt_check: PromptCheck) -> str:
        return "\n\n".join(part for part in (" ".join(prompt_check.advice), self.fallback_message) if part)

    def refuse_unchecked_prompt(self, prompt_check: PromptCheck) -> AnswerCheck:
        """The guard failed on the question: nothing is generated, the client gets the fallback."""
        return AnswerCheck(prompt_check.verdict, 0.0, "", self.fallback_text(prompt_check), True, "guard_error")


def safety_summary(prompt_check: PromptCheck, answer: AnswerCheck) -> dict[str, Any]:
    """The `safety` object of a response. Flags carry no evidence: a rejected answer's words must
    not reach the client, not even as a quote."""
    flags = [flag for flag in answer.verdict.flags if flag.action != "allow"]
    return {
        "action": answer.verdict.action,
        "fallback": answer.fallback,
        "reason_code": answer.reason_code,
        "emergency": bool(prompt_check.red_flags),
        "red_flags": list(prompt_check.red_flags),
        "flags": [{"category": f.category, "subtype": f.subtype, "severity": f.severity, "action": f.action,
                   "rule_id": f.rule_id} for f in flags],
    }
