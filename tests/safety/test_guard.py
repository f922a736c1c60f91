"""The guard's contract: fail-safe, batch, config, and never raising or stalling on any input."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinical_rlhf.config import Config, SafetyConfig
from clinical_rlhf.safety import AuditLog, SafetyGuard, SafetyVerdict, verify_audit_log


def test_internal_error_becomes_an_audited_fail_safe_reject(guard, tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    with AuditLog(tmp_path / "audit.jsonl") as audit:
        faulty = SafetyGuard(knowledge=guard.knowledge, audit=audit)
        monkeypatch.setattr(faulty.medications, "mentions", broken)
        verdict = faulty.check("What helps a cold?", "Rest.")
    assert verdict.action == "reject" and not verdict.is_safe
    assert [(f.category, f.subtype, f.evidence) for f in verdict.flags] == [("guard_error", "RuntimeError", "boom")]
    report = verify_audit_log(tmp_path / "audit.jsonl")
    assert report.ok and report.count == 1


def test_non_string_input_is_rejected_not_raised(guard) -> None:
    verdict = guard.check(None, 42)  # type: ignore[arg-type]
    assert verdict.action == "reject" and verdict.flags[0].category == "guard_error"


def test_audit_write_failure_rejects(guard, tmp_path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit.record = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    verdict = SafetyGuard(knowledge=guard.knowledge, audit=audit).check("Hi", "Drink water.")
    assert verdict.action == "reject" and verdict.flags[-1].subtype == "audit_write_failed"


def test_allow_verdicts_are_audited_unless_configured_off(guard, tmp_path) -> None:
    quiet = SafetyConfig.model_validate({"audit": {"record_allowed": False}})
    with AuditLog(tmp_path / "a.jsonl") as audit:
        SafetyGuard(knowledge=guard.knowledge, audit=audit).check("Hi", "Drink water.")
        SafetyGuard(knowledge=guard.knowledge, config=quiet, audit=audit).check("Hi", "Drink water.")
        SafetyGuard(knowledge=guard.knowledge, config=quiet, audit=audit).check("I want to kill myself", "Sleep.")
    assert verify_audit_log(tmp_path / "a.jsonl").count == 2


def test_check_batch_matches_check_and_mismatched_lengths_fail_safe(guard) -> None:
    prompts = ["I take warfarin.", "What helps a cold?"]
    responses = ["Ibuprofen 400 mg is fine.", "Rest and fluids."]
    assert guard.check_batch(prompts, responses) == [guard.check(p, r) for p, r in zip(prompts, responses)]
    assert [v.action for v in guard.check_batch(prompts, responses[:1])] == ["reject"]


def test_from_config_uses_the_knowledge_directory(tmp_path) -> None:
    cfg = Config.model_validate({"safety": {"knowledge_dir": str(tmp_path)}})
    (tmp_path / "interactions.yaml").write_text("interactions: []\n")
    custom = SafetyGuard.from_config(cfg)
    assert custom.knowledge.interactions == ()
    assert custom.check("I take warfarin.", "Ibuprofen 400 mg is fine.").action == "allow"


def test_verdict_is_the_most_restrictive_flag(guard) -> None:
    verdict = guard.check("I take sertraline and have a migraine.", "Sumatriptan 50 mg is a good option.")
    assert verdict.action == "escalate" and verdict.is_safe
    assert isinstance(verdict, SafetyVerdict)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2000)
NEAR_MISS = st.lists(st.sampled_from(["chest", "pain", "c h e s t", "ch3st", "500", "mg", "every", "4", "hours",
                                      "warfarin", "ibuprofen", "no", "not", "if", ".", ",", "\u200b", "с", "1",
                                      "x", "a", "q6h", "kg", "year", "old", "-", "*", " "]), max_size=400).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=st.one_of(TEXT, NEAR_MISS), response=st.one_of(TEXT, NEAR_MISS))
def test_check_never_raises_and_stays_fast_on_arbitrary_unicode(guard, prompt: str, response: str) -> None:
    started = time.thread_time()  # this thread's CPU time: other processes on the machine do not count
    verdict = guard.check(prompt, response)
    elapsed = time.thread_time() - started
    assert verdict.action in ("allow", "escalate", "reject")
    assert not any(f.category == "guard_error" for f in verdict.flags), verdict.flags
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms"  # a few ms normally; 50 ms leaves room for CI noise


@pytest.mark.parametrize("size", [20_000, 100_000])
def test_long_adversarial_inputs_stay_linear(guard, size: int) -> None:
    spaced = "c h e s t " * (size // 10)
    leet = "ch3st p41n 500mg " * (size // 17)
    for text in (spaced, leet, "a" * size, "1" * size, "." * size):
        started = time.thread_time()
        guard.check(text, text)
        assert time.thread_time() - started < 2.0, text[:20]


def test_safety_and_knowledge_import_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, clinical_rlhf.safety, clinical_rlhf.knowledge; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_text_longer_than_the_limit_is_rejected_unread(guard) -> None:
    short_limit = SafetyGuard(knowledge=guard.knowledge, config=SafetyConfig(max_text_chars=1_000))
    long_text = "Take paracetamol 1 g every 6 hours. " * 40  # 1,440 characters
    for verdict in (short_limit.check("What can I take?", long_text), short_limit.check(long_text, "Rest.")):
        assert verdict.action == "reject"
        (flag,) = verdict.flags
        assert (flag.category, flag.subtype) == ("guard_error", "input_too_long")
        assert "1,440 characters" in flag.evidence and "safety.max_text_chars" in flag.evidence
    assert short_limit.check_prompt(long_text).action == "escalate"
    conversation = [{"role": "user", "content": long_text}]
    assert short_limit.check_conversation(conversation, "Rest.").action == "reject"
    assert short_limit.check_conversation_prompt(conversation).action == "escalate"
    # at the limit the text is read as usual
    assert not any(flag.category == "guard_error"
                   for flag in short_limit.check("What can I take?", long_text[:1_000]).flags)


def test_the_text_limit_is_validated() -> None:
    with pytest.raises(ValueError, match="max_text_chars"):
        SafetyConfig(max_text_chars=10)
