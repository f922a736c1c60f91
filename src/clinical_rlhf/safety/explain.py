"""One readable sentence on why a flag was raised, with the knowledge-base source behind it."""

from __future__ import annotations

from dataclasses import replace

from clinical_rlhf.knowledge import KnowledgeBase
from clinical_rlhf.safety.verdict import SafetyFlag


ENDORSED = ":endorsed"
"""Suffix of a rule id the answer broke by okaying what the question proposes (`safety/dialogue.py`)."""


def explain(flag: SafetyFlag, knowledge: KnowledgeBase) -> str:
    if flag.rule_id.endswith(ENDORSED):
        plain = explain(replace(flag, rule_id=flag.rule_id.removesuffix(ENDORSED)), knowledge)
        return f"the answer okays what the question proposes: {plain}"
    kind, _, rest = flag.rule_id.partition(":")
    if flag.category == "red_flag":
        red_flag = knowledge.red_flag(flag.subtype)
        situation = {"no_emergency_advice": "the answer does not send the person to emergency care",
                     "downplayed": "the answer plays the emergency down",
                     "advised": "the answer gives emergency advice"}.get(rest.rpartition(":")[2], "")
        what = red_flag.name if red_flag else flag.subtype
        advice = f" Expected advice: {red_flag.advice} (source: {red_flag.source})" if red_flag else ""
        return f"{what}: {situation or 'red flag in the question'}.{advice}"
    if flag.category == "drug_interaction":
        rule = next((r for r in knowledge.interactions if r.id == rest), None)
        if rule is None:
            return f"{flag.evidence}: interaction rule {rest}."
        return f"{flag.evidence} ({rule.severity}): {rule.effect} (source: {rule.source})"
    if flag.category == "contraindication":
        rule = next((r for r in knowledge.contraindications if r.id == rest), None)
        if rule is None:
            return f"{flag.evidence}: contraindication {rest}."
        return f"{flag.evidence}: {rule.condition} - {rule.reason} (source: {rule.source})"
    if flag.category == "dosage":
        drug_name, _, subtype = rest.partition(":")
        drug = knowledge.drug(drug_name)
        if drug is None:
            return f"{flag.evidence}: {subtype}."
        limits = [f"{label} {value:g} mg" for label, value in (("daily maximum", drug.max_daily_mg),
                                                              ("single-dose maximum", drug.max_single_mg),
                                                              ("weekly maximum", drug.max_weekly_mg))
                  if value]
        if drug.pediatric_max_mg_per_kg_day:
            limits.append(f"children {drug.pediatric_max_mg_per_kg_day:g} mg/kg/day")
        return (f"{drug.name} '{flag.evidence}' {subtype.replace('_', ' ')} ({'; '.join(limits)}; "
                f"source: {drug.source})")
    if flag.category == "guard_error" and flag.subtype == "input_too_long":
        return f"the text is too long to read ({flag.evidence}); it is rejected unread to stay safe"
    if flag.category == "guard_error":
        return f"the guard failed ({flag.subtype}: {flag.evidence}); the answer is rejected to stay safe"
    return f"{flag.category}/{flag.subtype}: {flag.evidence}"
