from __future__ import annotations

import pytest

from clinical_rlhf.safety import SafetyGuard


@pytest.fixture(scope="session")
def guard() -> SafetyGuard:
    """One guard for the session: building it indexes the whole knowledge base (~0.5 s)."""
    return SafetyGuard()


def categories(verdict) -> set[str]:
    """Categories the guard acted on (escalate or reject)."""
    return {flag.category for flag in verdict.flags if flag.action != "allow"}
