"""The safety case of a run, for a safety board: what was trained, on what, what changed by every
judge and suite, what the guard vetoed during training, which alerts fired, the audit chain's
head, and the known limits (`clinical-rlhf safety-case RUN_DIR`; rendered by `safety_case_html.py`).

Everything is read from the run directory as training and `evaluate` left it; nothing there is
written except the case itself. A piece that is missing (no evaluation yet, auditing off) is
said so in the case, never silently left out.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.durable import sha256_file
from clinical_rlhf.errors import ClinicalRLHFError, InputDataError
from clinical_rlhf.monitoring.runfiles import (
    AUDIT_FILE,
    CONFIG_FILE,
    EVALUATION_FILE,
    read_events,
    read_jsonl,
    utc_now_iso,
)

log = logging.getLogger(__name__)

EVENT_KINDS = ("alert", "rollback", "emergency_stop")


def _policy(run_dir: Path) -> dict[str, Any]:
    """The newest good checkpoint: its adapter's hash (the model fingerprint) and the base's."""
    from clinical_rlhf.evaluation.policies import resolve_policy

    try:
        policy = resolve_policy(str(run_dir), run_dir)
    except ClinicalRLHFError as exc:
        return {"error": str(exc)}
    manifest = json.loads((policy.info.path / "manifest.json").read_text(encoding="utf-8"))
    state = policy.payload.state
    return {"checkpoint": str(policy.info.path), "iteration": policy.info.iteration, "kind": policy.info.kind,
            "adapter_sha256": manifest.get("sha256", {}).get("trainable.safetensors"),
            "base_fingerprint": state.get("base_fingerprint"), "metrics": dict(policy.info.metrics)}


def _config(run_dir: Path) -> tuple[str, dict[str, Any]]:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise InputDataError(f"{run_dir} has no {CONFIG_FILE}; pass the directory of a training run "
                             f"(runs/<name>, as `clinical-rlhf train` writes it)")
    text = path.read_text(encoding="utf-8")
    try:
        return text, yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InputDataError(f"{path}: not valid YAML ({exc})") from None


def _data_files(config: dict[str, Any]) -> list[dict[str, str]]:
    """Every file the resolved config names that exists here, with its SHA-256, plus the
    knowledge files the guard read (shipped or overridden)."""
    from clinical_rlhf.knowledge.loader import FILES, shipped_directory

    found: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, f"{key}.{name}" if key else name)
        elif isinstance(value, str) and ("/" in value or value.endswith((".jsonl", ".json", ".yaml", ".csv"))):
            path = Path(value).expanduser()
            if path.is_file():
                found[key] = str(path)

    walk(config, "")
    files = [{"key": key, "path": path, "sha256": sha256_file(path)} for key, path in sorted(found.items())]
    override = (config.get("safety") or {}).get("knowledge_dir")
    for filename in FILES.values():
        custom = Path(override) / filename if override else None
        path = custom if custom is not None and custom.is_file() else shipped_directory() / filename
        files.append({"key": f"knowledge/{filename}", "path": str(path), "sha256": sha256_file(path)})
    return files


def _vetoes(audit_path: Path) -> dict[str, Any]:
    """Vetoed answers per flag category and iteration, from the training's guard_check records."""
    per_iteration: dict[int, Counter] = defaultdict(Counter)
    for record in read_jsonl(audit_path):
        verdict = record.get("verdict") or {}
        if record.get("event") != "guard_check" or verdict.get("action") != "reject":
            continue
        iteration = int((record.get("details") or {}).get("iteration", 0))
        categories = {flag.get("category") for flag in verdict.get("flags", []) if flag.get("action") == "reject"}
        per_iteration[iteration].update(categories or {"unknown"})
    categories = sorted({c for counts in per_iteration.values() for c in counts})
    return {"iterations": sorted(per_iteration), "categories": categories,
            "counts": {str(i): dict(per_iteration[i]) for i in sorted(per_iteration)},
            "totals": {c: sum(per_iteration[i][c] for i in per_iteration) for c in categories}}


def _audit(run_dir: Path) -> dict[str, Any]:
    from clinical_rlhf.safety.audit_verify import verify_audit_log

    path = run_dir / AUDIT_FILE
    if not path.is_file():
        return {"path": str(path), "present": False}
    report = verify_audit_log(path)
    return {"path": str(path), "present": True, "records": report.count, "head_hash": report.head_hash,
            "intact": report.ok, "problem": report.problem.message if report.problem else None,
            "vetoes": _vetoes(path)}


def _evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """Every `evaluate` result of the run (evaluation/*/evaluation.json), rows left out."""
    results = []
    for path in sorted((run_dir / "evaluation").glob("*/evaluation.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: skipped, not readable JSON (%s)", path, exc)
            continue
        data.pop("rows", None)
        data["path"] = str(path)
        results.append(data)
    return results


def _training_before_after(run_dir: Path) -> dict[str, Any]:
    path = run_dir / EVALUATION_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def known_limits(case: dict[str, Any]) -> list[str]:
    """Plain statements of what this case does not show, derived from what it holds."""
    config = case["config"]
    limits = ["The guard's verdicts are the training signal: a lower unsafe ratio by the guard shows the policy "
              "learned to satisfy this guard, not by itself that it became safer."]
    holdout = (config.get("safety") or {}).get("holdout_knowledge") or []
    if holdout:
        limits.append(f"The holdout judge covers only the {len(holdout)} held-out knowledge selector(s) "
                      f"({', '.join(holdout)}); it says nothing about clinical areas outside them.")
    else:
        limits.append("No knowledge was held out of training (safety.holdout_knowledge is empty), so no rule-based "
                      "judge independent of the training guard exists for this run.")
    judged = {name for e in case["evaluations"] for name in (e.get("judges") or {}).get("judges", {})}
    if "llm" not in judged:
        limits.append("No LLM judge graded this run's answers.")
    for evaluation in case["evaluations"]:
        llm = ((evaluation.get("judges") or {}).get("judges") or {}).get("llm")
        if llm and llm.get("identity", "").startswith("local:clinical-demo"):
            limits.append(f"The LLM judge of {Path(evaluation['path']).parent.name} is the tiny demo model: its "
                          f"judgements are mostly unparsable and carry no clinical weight.")
    if not any(e.get("suite") for e in case["evaluations"]):
        limits.append("No external suite (HealthBench, MedSafetyBench or CARES format) was run on this model.")
    if not case["audit"].get("present"):
        limits.append("The run kept no audit log, so vetoes during training cannot be shown or verified.")
    elif not case["audit"].get("intact"):
        limits.append(f"The audit log's hash chain does not verify: {case['audit'].get('problem')}")
    limits.append("Prompts, preference data and suites shipped with the project are generated or self-written "
                  "fixtures, not clinician-authored benchmarks; no result here has been reviewed by clinicians.")
    limits.append("Intervals are percentile bootstraps over prompts and tests are paired across the same prompts; "
                  "they cover sampling of prompts and answers, not how representative the prompts are.")
    return limits


def build_safety_case(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputDataError(f"{run_dir}: no such run directory; pass runs/<name> of a training run")
    config_text, config = _config(run_dir)
    case: dict[str, Any] = {
        "created": utc_now_iso(), "run_dir": str(run_dir), "run_name": run_dir.name,
        "model": config.get("model") or {}, "policy": _policy(run_dir),
        "config": config, "config_yaml": config_text, "data_files": _data_files(config),
        "training": _training_before_after(run_dir), "evaluations": _evaluations(run_dir),
        "events": [e for e in read_events(run_dir) if e.get("kind") in EVENT_KINDS],
        "audit": _audit(run_dir),
    }
    case["known_limits"] = known_limits(case)
    return case
