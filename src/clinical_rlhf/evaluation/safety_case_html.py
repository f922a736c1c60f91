"""The safety case as one self-contained HTML document (no scripts, no external files), laid out
as a model card and a safety case are: claim, model, data, evidence, operation, limits. A PDF
is written beside it when a converter is installed (WeasyPrint, else wkhtmltopdf)."""

from __future__ import annotations

import math
import shutil
import subprocess
from html import escape
from pathlib import Path
from typing import Any

from clinical_rlhf.evaluation.html_cells import html_table

STYLE = """
body{font-family:Georgia,serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{border-bottom:1px solid #bbb;margin-top:2rem;font-size:1.25rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;
vertical-align:top;text-align:left}th{background:#f3f3f3}code,pre{font-family:Menlo,Consolas,monospace;font-size:.8rem}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto}.muted{color:#666}.claim{border-left:4px solid #555;
padding:.3rem .8rem;background:#fafafa}.bad{color:#b00020}.ok{color:#1b6e20}
"""
MAX_VETO_COLUMNS = 10


def _n(value: Any, digits: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, digits) if isinstance(value, (int, float)) and not isinstance(value, bool) else escape(str(value))


def _est(value: dict | None) -> str:
    if not value or value.get("value") is None or not math.isfinite(value["value"]):
        return "–"
    return f"{_n(value['value'])} <span class=\"muted\">[{_n(value['low'])}, {_n(value['high'])}]</span>"


def _model(case: dict) -> str:
    model, policy = case["model"], case["policy"]
    rows = [["model", escape(str(model.get("name")))], ["model path", escape(str(model.get("path") or "registry"))]]
    if "error" in policy:
        rows.append(["trained policy", f'<span class="bad">{escape(policy["error"])}</span>'])
    else:
        rows += [["checkpoint", f"{escape(policy['checkpoint'])} (iteration {policy['iteration']}, {policy['kind']})"],
                 ["adapter fingerprint (SHA-256 of trainable.safetensors)", f"<code>{escape(str(policy['adapter_sha256']))}</code>"],
                 ["base-model fingerprint", f"<code>{escape(str(policy['base_fingerprint']))}</code>"]]
    return html_table(["", ""], rows)


def _evidence_rows(evaluation: dict) -> list[list[str]]:
    """One row per judge and per suite measure: A, B, A − B, p."""
    name = Path(evaluation["path"]).parent.name
    rows = []
    judges = evaluation.get("judges") or {}
    for judge, per_policy in (judges.get("summary") or {}).items():
        kind = "training signal" if judges["judges"][judge].get("training_signal") else "independent"
        comparison = (judges.get("comparison") or {}).get(judge) or {}
        rows.append([escape(name), f"{escape(judge)} judge ({kind}): unsafe ratio",
                     _est((per_policy.get("A") or {}).get("unsafe_ratio")),
                     _est((per_policy.get("B") or {}).get("unsafe_ratio")),
                     _est(comparison.get("difference")), _n(comparison.get("p_value"), ".3g")])
        if "held_out_red_flag_prompts" in (per_policy.get("A") or {}):
            rows.append([escape(name), f"{escape(judge)} judge ({kind}): unsafe ratio on the "
                                       f"{per_policy['A']['held_out_red_flag_prompts']} prompt(s) presenting a held-out "
                                       f"red flag",
                         _est(per_policy["A"].get("unsafe_ratio_on_held_out_red_flags")),
                         _est((per_policy.get("B") or {}).get("unsafe_ratio_on_held_out_red_flags")), "–", "–"])
    suite = evaluation.get("suite")
    if suite:
        summary, comparison = suite["summary"], suite.get("comparison") or {}
        key = "score" if "score" in summary.get("A", {}) else "unsafe_ratio"
        paired = comparison.get("score", {}).get("mean_difference") if key == "score" else comparison.get("unsafe_difference")
        p = comparison.get("score", {}).get("p_value") if key == "score" else comparison.get("p_value")
        rows.append([escape(name), f"{escape(suite['format'])} suite ({suite['cases']} cases, sha256 "
                                   f"<code>{escape(suite['sha256'][:12])}</code>): {key.replace('_', ' ')}",
                     _est(summary.get("A", {}).get(key)), _est(summary.get("B", {}).get(key)), _est(paired), _n(p, ".3g")])
    summary = evaluation.get("summary") or {}
    if summary and not suite:
        comparison = (evaluation.get("comparison") or {}).get("unsafe_ratio") or {}
        rows.insert(0, [escape(name), "guard veto ratio (reward evaluation)", _est(summary.get("A", {}).get("unsafe_ratio")),
                        _est(summary.get("B", {}).get("unsafe_ratio")), _est(comparison.get("difference")),
                        _n(comparison.get("p_value"), ".3g")])
    return rows


def _evidence(case: dict) -> str:
    html = ""
    training = case.get("training") or {}
    if training.get("before") and training.get("after"):
        before, after = training["before"], training["after"]
        rows = [["unsafe ratio (training guard)", _n(before.get("unsafe_ratio")), _n(after.get("unsafe_ratio"))],
                ["mean reward", _n(before.get("reward")), _n(after.get("reward"))]]
        rows += [[f"  {escape(name)}", _n(value), _n((after.get("components") or {}).get(name))]
                 for name, value in (before.get("components") or {}).items()]
        rows.append(["KL to the reference (nats)", _n(before.get("kl")), _n(after.get("kl"))])
        html += (f"<h3>During training (the trainer's check on {_n(after.get('prompts'), 'd')} held-out prompts, one "
                 f"answer each, by the training guard and reward)</h3>"
                 + html_table(["measure", "before", "after"], rows))
    rows = [row for evaluation in case["evaluations"] for row in _evidence_rows(evaluation)]
    if rows:
        html += ("<h3>Before and after, by every judge and suite</h3><p class=\"muted\">A is the trained policy, B its "
                 "baseline as named in each evaluation; intervals are percentile bootstraps over prompts, p is the "
                 "paired test (exact McNemar for unsafe ratios, Wilcoxon for scores).</p>"
                 + html_table(["evaluation", "measure", "A", "B", "A − B", "p"], rows))
    else:
        html += ('<p class="bad">No evaluation of this run was found (runs/&lt;name&gt;/evaluation/*/evaluation.json): '
                 "run <code>clinical-rlhf evaluate --checkpoint RUN_DIR --baseline reference --judge guard "
                 "--judge holdout --judge llm</code> first.</p>")
    for evaluation in case["evaluations"]:
        pairs = (evaluation.get("judges") or {}).get("agreement") or []
        if pairs:
            html += (f"<h3>Agreement between judges ({escape(Path(evaluation['path']).parent.name)})</h3>"
                     + html_table(["judges", "answers", "agreement", "Cohen's kappa"],
                              [[escape(" vs ".join(p["judges"])), str(p["n"]), _n(p["agreement"]), _n(p["kappa"])]
                               for p in pairs]))
    return html


def _vetoes(audit: dict) -> str:
    vetoes = audit.get("vetoes") or {}
    iterations = vetoes.get("iterations") or []
    if not iterations:
        return "<p>No vetoed answer was recorded during training.</p>" if audit.get("present") else \
            '<p class="bad">No audit log: vetoes during training are unknown.</p>'
    # Iterations grouped into at most MAX_VETO_COLUMNS equal spans, so a long run stays one table.
    span = max(1, math.ceil((iterations[-1] - iterations[0] + 1) / MAX_VETO_COLUMNS))
    starts = list(range(iterations[0], iterations[-1] + 1, span))
    header = ["category", *[f"{s}–{s + span - 1}" if span > 1 else str(s) for s in starts], "total"]
    rows = []
    for category in vetoes["categories"]:
        cells = [sum(vetoes["counts"].get(str(i), {}).get(category, 0) for i in range(s, s + span)) for s in starts]
        rows.append([escape(category), *map(str, cells), str(vetoes["totals"][category])])
    return ("<p class=\"muted\">Vetoed (rejected) training answers per flag category, by iteration.</p>"
            + html_table(header, rows))


def _events(events: list[dict]) -> str:
    if not events:
        return "<p>No alert, rollback or emergency stop during training.</p>"
    return html_table(["iteration", "kind", "severity", "message"],
                  [[str(e.get("step")), escape(str(e.get("kind"))), escape(str(e.get("severity"))),
                    escape(str(e.get("message")))] for e in events])


def _audit(audit: dict) -> str:
    if not audit.get("present"):
        return f'<p class="bad">No audit log at {escape(audit["path"])}.</p>'
    status = '<span class="ok">verifies</span>' if audit["intact"] else \
        f'<span class="bad">does not verify: {escape(str(audit["problem"]))}</span>'
    return html_table(["", ""], [["file", escape(audit["path"])], ["records", str(audit["records"])],
                             ["head hash", f"<code>{escape(audit['head_hash'])}</code>"], ["hash chain", status]])


def render_safety_case(case: dict) -> str:
    name = escape(case["run_name"])
    files = html_table(["config key / file", "path", "SHA-256"],
                   [[escape(f["key"]), escape(f["path"]), f"<code>{escape(f['sha256'])}</code>"]
                    for f in case["data_files"]])
    limits = "".join(f"<li>{escape(limit)}</li>" for limit in case["known_limits"])
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Safety case: {name}</title>'
        f"<style>{STYLE}</style></head><body><h1>Safety case: {name}</h1>"
        f'<p class="muted">Generated {escape(case["created"])} from {escape(case["run_dir"])} by '
        f"<code>clinical-rlhf safety-case</code>.</p>"
        '<h2>1. Claim</h2><p class="claim">The fine-tuned policy below answers clinical questions unsafely no more '
        "often than the model it was trained from, judged by evaluations that were not its training signal. "
        "Section 4 gives the evidence for and against this claim; section 8 what it cannot show.</p>"
        f"<h2>2. Model</h2>{_model(case)}"
        f"<h2>3. Data and configuration</h2>{files}"
        f"<details><summary>Resolved configuration</summary><pre>{escape(case['config_yaml'])}</pre></details>"
        f"<h2>4. Evidence: before and after</h2>{_evidence(case)}"
        f"<h2>5. Vetoes by category over training</h2>{_vetoes(case['audit'])}"
        f"<h2>6. Alerts and rollbacks</h2>{_events(case['events'])}"
        f"<h2>7. Audit chain</h2>{_audit(case['audit'])}"
        f"<h2>8. Known limits</h2><ul>{limits}</ul></body></html>")


def write_pdf(html: str, path: Path) -> str | None:
    """Write `path` from the HTML with WeasyPrint or wkhtmltopdf; the converter's name, or None
    when neither is installed (the HTML is the case; the PDF a convenience)."""
    try:
        from weasyprint import HTML  # optional
    except ImportError:
        HTML = None
    if HTML is not None:
        HTML(string=html).write_pdf(str(path))
        return "weasyprint"
    converter = shutil.which("wkhtmltopdf")
    if converter is None:
        return None
    subprocess.run([converter, "--quiet", "-", str(path)], input=html.encode("utf-8"), check=True, timeout=120)
    return "wkhtmltopdf"
