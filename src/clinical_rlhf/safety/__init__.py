"""Tier-1 safety: the deterministic guard that can veto any answer, and the audit log.

    from clinical_rlhf.safety import SafetyGuard, AuditLog, verify_audit_log
    guard = SafetyGuard()                               # or SafetyGuard.from_config(cfg)
    verdict = guard.check(prompt, response)             # SafetyVerdict: action, is_safe, flags
    with AuditLog(path, fsync="always") as audit:
        audit.record("run_start", "run-42", details={...})
    report = verify_audit_log(path)                     # AuditReport: ok, count, problem

Imports no torch: the guard runs anywhere (a sidecar, a CI check, a notebook). The guard's hot
modules run compiled when the install built them (`clinical_rlhf.safety.compiled`, docs/safety.md).
"""

# First: importing it decides, before any other module of the package loads, which run compiled.
from clinical_rlhf.safety import compiled
from clinical_rlhf.safety.audit import GENESIS_HASH, AuditLog, canonical_json, chain_hash
from clinical_rlhf.safety.audit_verify import AuditProblem, AuditReport, verify_audit_log
from clinical_rlhf.safety.guard import SafetyGuard
from clinical_rlhf.safety.phi import scrub_phi
from clinical_rlhf.safety.verdict import ACTION_ORDER, Action, Category, SafetyFlag, SafetyVerdict, Severity

__all__ = [
    "ACTION_ORDER",
    "GENESIS_HASH",
    "Action",
    "AuditLog",
    "AuditProblem",
    "AuditReport",
    "Category",
    "SafetyFlag",
    "SafetyGuard",
    "SafetyVerdict",
    "Severity",
    "canonical_json",
    "chain_hash",
    "compiled",
    "scrub_phi",
    "verify_audit_log",
]
