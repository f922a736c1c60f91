"""The evaluation page's sections for independent judges, their agreement, the disagreements
with their texts, and an external suite (`html.py` assembles the page)."""

from __future__ import annotations

from html import escape

from clinical_rlhf.evaluation.html_cells import clipped, estimate_cell, html_table, number_cell


def judges_html(result: dict) -> str:
    section = result.get("judges")
    if not section:
        return ""
    labels = list(result.get("policies") or {})
    comparison = section.get("comparison")
    header = ["judge", "kind"] + [f"{l}: unsafe (read)" for l in labels] + [f"{l}: unparsable" for l in labels]
    header += ["A − B unsafe", "McNemar p"] if comparison else []
    body = []
    for name, per_policy in section["summary"].items():
        described = section["judges"][name]
        kind = "training signal" if described.get("training_signal") else "independent"
        row = [escape(name), kind]
        row += [estimate_cell(per_policy[l]["unsafe_ratio"]) for l in labels]
        row += [f'{number_cell(per_policy[l]["unparsable_ratio"])} ({per_policy[l]["unparsable"]})' for l in labels]
        if comparison:
            row += [estimate_cell(comparison[name]["difference"]), number_cell(comparison[name]["p_value"], ".3g")]
        body.append(row)
    pairs = [[escape(" vs ".join(p["judges"])), str(p["n"]), number_cell(p["agreement"]), number_cell(p["kappa"]),
              str(p["both_unsafe"]), str(p["skipped_unparsable"])] for p in section["agreement"]]
    disagreements = [[escape(d["item"]), escape(d["policy"]), clipped(d["question"]), clipped(d["response"]),
                      "<br>".join(f"<b>{escape(n)}</b>: {escape(v['label'])}"
                                  + (f" — {clipped('; '.join(v['reasons']))}" if v["reasons"] else "")
                                  for n, v in d["judges"].items())]
                     for d in section["disagreements"]]
    html = ("<h2>Judges</h2><p class=\"muted\">Each judge labels every answer safe, unsafe or unparsable; the unsafe "
            "ratio is over the answers it could read, and an unparsable judgement is never counted as safe. "
            "The guard is the signal the policy was trained against; the others are not.</p>"
            + html_table(header, body))
    holdout = section["summary"].get("holdout") or {}
    if holdout and "held_out_red_flag_prompts" in holdout.get(labels[0], {}):
        ratios = ", ".join(f"{escape(l)} {estimate_cell(holdout[l]['unsafe_ratio_on_held_out_red_flags'])}"
                           for l in labels)
        html += (f"<p>Holdout judge on the {holdout[labels[0]]['held_out_red_flag_prompts']} prompt(s) presenting a "
                 f"held-out red flag (the ratio above is diluted by prompts its knowledge is not about): unsafe "
                 f"{ratios}.</p>")
    if pairs:
        html += ("<h3>Agreement between judges</h3>"
                 + html_table(["judges", "answers", "agreement", "Cohen's kappa", "both unsafe",
                               "skipped (unparsable)"], pairs))
    if disagreements:
        html += (f"<h3>Disagreements (first {len(disagreements)})</h3>"
                 + html_table(["prompt", "policy", "question", "answer", "judges"], disagreements))
    return html


def suite_html(result: dict) -> str:
    suite = result.get("suite")
    if not suite:
        return ""
    labels = list(result.get("policies") or {})
    first = suite["summary"][labels[0]]
    keys = [k for k in ("score", "unsafe_ratio", "over_refusal_ratio", "unsafe_compliance_ratio",
                        "missing_caution_ratio", "appropriate_ratio") if k in first]
    body = [[escape(k.replace("_", " ")), *(estimate_cell(suite["summary"][l][k]) for l in labels)] for k in keys]
    body.append(["unparsable answers", *(str(suite["summary"][l]["unparsable"]) for l in labels)])
    comparison = suite.get("comparison") or {}
    note = ""
    if "score" in comparison:
        c = comparison["score"]
        note = (f"<p>A − B score {estimate_cell(c['mean_difference'])} over {comparison['prompts']} prompts, "
                f"{escape(c['test'])} p = {number_cell(c['p_value'], '.3g')}.</p>")
    elif "unsafe_difference" in comparison:
        note = (f"<p>A − B unsafe {estimate_cell(comparison['unsafe_difference'])} over {comparison['prompts']} "
                f"prompts, exact McNemar p = {number_cell(comparison['p_value'], '.3g')}.</p>")
    return (f"<h2>Suite: {escape(suite['format'])}</h2><p class=\"muted\">{escape(suite['path'])} · "
            f"{suite['cases']} cases · sha256 {escape(suite['sha256'])} · graded by {escape(suite['grader']['judge'])} "
            f"with rubric {escape(suite['grader']['rubric'])} ({escape(suite['grader']['rubric_sha256'][:12])})</p>"
            + html_table(["measure", *labels], body) + note)
