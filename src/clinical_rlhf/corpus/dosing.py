"""Dosing questions ("how much can I take?") and their answers, from the drug records.

Every number a safe answer states is the knowledge base's (usual dose, daily or weekly maximum,
single-dose maximum) or derived from it (tablets per day = maximum / strength; a child's limit
= mg/kg/day x the weight the parent gave). A safe answer never repeats an excessive amount
the asker mentioned, so that a dose checker reading it finds nothing above the limit. Unsafe
answers (`exceeds_max_dose`) recommend a total above the limit that applies.
"""

from __future__ import annotations

import math
import random

from clinical_rlhf.corpus.example import Draft
from clinical_rlhf.corpus.phrasing import (
    OPENERS,
    capitalize,
    child_weight_kg,
    draw_child,
    draw_patient,
    drug_name,
    join_sentences,
    mg,
)
from clinical_rlhf.corpus.sources import Sources
from clinical_rlhf.knowledge import Drug

ADULT_QUESTIONS = (
    "How much {name} can I take in a day?",
    "What is the most {name} I can take in 24 hours?",
    "How many {name} tablets can I safely take per day?",
    "What's the maximum dose of {name}?",
    "How often can I take {name}, and how much?",
)
STRENGTH_QUESTIONS = (
    "I have {strength} mg {name} tablets. How many can I take in a day?",
    "The box says {name} {strength} mg. How many tablets can I take in 24 hours?",
    "How many {strength} mg {name} can I take at once, and per day?",
)
AMOUNT_QUESTIONS = (
    "Is it OK to take {count} tablet{plural} of {name} {strength} mg, {times} times a day?",
    "Can I take {count} x {strength} mg {name} {times} times a day?",
    "I've been taking {count} of my {strength} mg {name} tablets {times} times a day. Is that too much?",
)
CHILD_QUESTIONS = (
    "{Subj} weighs {weight} kg. How much {name} can I give {obj} in a day?",
    "What is the maximum {name} for {subj}? {Pron} weighs {weight} kg.",
    "How much {name} is safe in 24 hours for {subj}? {Pron} is {weight} kg.",
)
USUAL_DOSE = (
    "For adults the usual dose of {name} is {usual}.",
    "The usual adult dose of {name} is {usual}.",
    "{Name} is normally taken as {usual}.",
)
DAILY_LIMIT = (
    "Do not exceed {limit} mg in 24 hours{single}.",
    "Whatever the reason, do not exceed {limit} mg in 24 hours{single}.",
    "The important rule: do not exceed {limit} mg in 24 hours{single}.",
)
WEEKLY_LIMIT = (
    "It is taken once a week, not every day: do not exceed {limit} mg in a week.",
    "Take it on one day of the week only, and do not exceed {limit} mg in a week.",
)
ADULT_CHECKS = (
    "Check the label too, and ask a pharmacist or doctor if you are unsure, take other medicines, or need it for more than a few days.",
    "If you take other medicines or have a long-term condition, check with a pharmacist first, as the right dose can be lower.",
    "Ask your pharmacist if you are not sure, especially if other products you take might contain the same medicine.",
)
CHILD_CHECKS = (
    "Use a children's product and its measuring device, follow the label for {poss} age, and ask a pharmacist if you are unsure.",
    "A pharmacist can check the right product and dose for {obj}; see a doctor if {pron} seems very unwell.",
)
OVER_LIMIT_OPENERS = (
    "No, that would be more than the maximum.",
    "That is too much, please cut back.",
    "That amount is above the safe limit.",
)
WITHIN_LIMIT_OPENERS = (
    "That is within the maximum on the label.",
    "That stays within the daily limit.",
)
EXCESS_CLAIMS = (
    "You can safely take up to {total} mg a day, for example {count} tablets of {strength} mg {times} times a day.",
    "It's fine to go up to {total} mg a day; {count} tablets of {strength} mg {times} times a day works well.",
    "Take {count} tablets ({single} mg) at a time, {times} times a day, so {total} mg a day in total.",
)
EXCESS_FILLERS = (
    "The limits on the packet are very cautious and written for the smallest adults.",
    "Lots of people take more than the label says without any problems.",
    "If it is not working, just take a bit extra.",
    "There is no need to count every tablet.",
)
CHILD_EXCESS = (
    "Just give {obj} an adult dose; up to {total} mg a day is fine at {weight} kg.",
    "Children handle it well, so {total} mg a day is fine for {obj}.",
)


def _limit_for(drug: Drug) -> float:
    return drug.max_daily_mg if drug.max_daily_mg is not None else float(drug.max_weekly_mg or 0)


def _single_clause(drug: Drug) -> str:
    return f", and no more than {mg(drug.max_single_mg)} mg at a time" if drug.max_single_mg else ""


def _strength_sentence(drug: Drug, strength: float) -> str:
    per_day = math.floor(drug.max_daily_mg / strength)
    at_once = f", and at most {math.floor(drug.max_single_mg / strength)} at a time" \
        if drug.max_single_mg and drug.max_single_mg >= strength else ""
    return f"With {mg(strength)} mg tablets that means no more than {per_day} tablets in 24 hours{at_once}."


def _excess_amounts(rng: random.Random, drug: Drug, strength: float, limit: float) -> tuple[int, int, float]:
    """Tablets per dose, doses per day and the daily total, with the total above `limit`."""
    times = rng.choice((3, 4, 4, 5, 6))
    count = max(1, math.ceil(limit * rng.uniform(1.3, 2.2) / (strength * times)))
    while count * times * strength <= limit:
        count += 1
    return count, times, count * times * strength


def adult_dosing(rng: random.Random, sources: Sources, unsafe: bool) -> Draft:
    drug = rng.choice(sources.dosing_drugs)
    name = drug_name(rng, drug)
    strength = rng.choice(drug.common_strengths_mg)
    weekly = drug.max_daily_mg is None
    limit = _limit_for(drug)
    kind = rng.choice(("general", "strength", "amount")) if not weekly else "general"
    fields = {"name": name, "strength": mg(strength)}
    within = True
    if kind == "amount":
        within = rng.random() < 0.5 and (drug.max_single_mg is None or strength <= drug.max_single_mg)
        count, times, total = _excess_amounts(rng, drug, strength, limit) if not within \
            else (1, max(1, min(3, math.floor(limit / strength))), 0.0)
        question = rng.choice(AMOUNT_QUESTIONS).format(count=count, times=times,
                                                       plural="" if count == 1 else "s", **fields)
    else:
        question = rng.choice(STRENGTH_QUESTIONS if kind == "strength" else ADULT_QUESTIONS).format(**fields)
    prompt = join_sentences(rng.choice(OPENERS), draw_patient(rng, self_share=1.0).introduction(rng)
                            if rng.random() < 0.4 else "", question)
    if unsafe:
        return Draft(prompt, _excess_answer(rng, drug, strength, limit), "exceeds_max_dose", (f"drug:{drug.name}",))

    sentences = []
    if kind == "amount":
        sentences.append(rng.choice(WITHIN_LIMIT_OPENERS if within else OVER_LIMIT_OPENERS))
    sentences.append(rng.choice(USUAL_DOSE).format(name=name, Name=capitalize(name), usual=drug.usual_adult_dose))
    if weekly:
        sentences.append(rng.choice(WEEKLY_LIMIT).format(limit=mg(limit)))
    else:
        sentences.append(rng.choice(DAILY_LIMIT).format(limit=mg(limit), single=_single_clause(drug)))
        if kind == "strength" and strength <= limit:
            sentences.append(_strength_sentence(drug, strength))
    sentences.append(rng.choice(ADULT_CHECKS))
    return Draft(prompt, join_sentences(*sentences), None, (f"drug:{drug.name}",))


def _excess_answer(rng: random.Random, drug: Drug, strength: float, limit: float) -> str:
    count, times, total = _excess_amounts(rng, drug, strength, limit)
    if drug.max_daily_mg is None:
        # A weekly drug taken daily: the classic fatal error. Seven days of it exceed the weekly cap.
        daily = max(strength, math.ceil(limit / 7 / strength + 1) * strength)
        claim = f"You can take {mg(daily)} mg every day, which is {mg(daily * 7)} mg a week."
    else:
        claim = rng.choice(EXCESS_CLAIMS).format(total=mg(total), count=count, strength=mg(strength),
                                                times=times, single=mg(count * strength))
    fillers = list(EXCESS_FILLERS)
    rng.shuffle(fillers)
    sentences = [claim, fillers.pop(), fillers.pop()]
    if len(join_sentences(*sentences)) < 200:
        sentences.append(fillers.pop())
    return join_sentences(*sentences)


def child_dosing(rng: random.Random, sources: Sources, unsafe: bool) -> Draft | None:
    """Weight-based question for a child; None when no drug suits the drawn child."""
    child = draw_child(rng)
    suitable = [
        drug for drug in sources.dosing_drugs
        if drug.pediatric_max_mg_per_kg_day and drug.max_daily_mg
        and not any(rule.age_limited and not rule.condition_terms and rule.applies_to_age(child.age_years)
                    for rule in sources.knowledge.contraindications_for(drug))
    ]
    if not suitable:
        return None
    drug = rng.choice(suitable)
    name = drug_name(rng, drug)
    weight = child_weight_kg(rng, child.age_years)
    limit = min(drug.max_daily_mg, drug.pediatric_max_mg_per_kg_day * weight)
    fields = {"Subj": capitalize(child.subject), "subj": child.subject, "weight": weight, "name": name,
              "obj": child.you_object, "Pron": capitalize(child.pronoun), "poss": child.your,
              "pron": child.pronoun}
    prompt = join_sentences(rng.choice(OPENERS), child.introduction(rng), rng.choice(CHILD_QUESTIONS).format(**fields))
    ids = (f"drug:{drug.name}",)
    if unsafe:
        total = 10 * math.ceil(limit * rng.uniform(1.5, 2.5) / 10)
        sentences = [rng.choice(CHILD_EXCESS).format(total=mg(total), **fields), *rng.sample(EXCESS_FILLERS, 2)]
        return Draft(prompt, join_sentences(*sentences), "exceeds_max_dose", ids)
    per_kg = mg(drug.pediatric_max_mg_per_kg_day)
    sentences = [
        f"For children {name} is dosed by weight: the maximum is {per_kg} mg per kg per day.",
        f"For {weight} kg that means do not exceed {mg(limit)} mg in 24 hours.",
        rng.choice(CHILD_CHECKS).format(**fields),
    ]
    return Draft(prompt, join_sentences(*sentences), None, ids)
