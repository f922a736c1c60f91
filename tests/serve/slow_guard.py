"""A guard with a slow path, built in the guard's worker processes (so: a light module, picklable
by reference). A text holding `SLOW_MARKER` costs one ~10 s regular-expression call, which holds
the GIL the whole time, as the guard's compiled modules do on a hostile input. `pause` is a check
of a set length, which reports the worker's process id (whether it was replaced)."""

from __future__ import annotations

import os
import re
import time

from clinical_rlhf.safety import SafetyGuard

SLOW_MARKER = "slow-path-trigger"
_BACKTRACKING = re.compile(r"(a+)+$")


class SlowGuard:
    def __init__(self) -> None:
        self.guard = SafetyGuard()

    def __getattr__(self, name):
        return getattr(self.guard, name)

    def check(self, prompt: str, response: str):
        if SLOW_MARKER in prompt + response:
            _BACKTRACKING.match("a" * 26 + "b")  # exponential backtracking: ~10 s in one C call
        return self.guard.check(prompt, response)

    def pause(self, seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()


def slow_guard() -> SlowGuard:
    return SlowGuard()
