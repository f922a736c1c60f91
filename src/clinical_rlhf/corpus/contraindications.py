""""Can I take X with my condition / give X to my child?" from the contraindication rules.

Condition rules ("NSAIDs in kidney disease") make questions from an adult who names the
condition with one of the rule's own phrases; age rules ("codeine under 12") make questions
from a parent about a child younger than the rule's limit. A safe answer says the medicine is
not a good choice, quotes the rule's condition and reason, and sends the person to a pharmacist
or doctor for an alternative; an unsafe one (`contraindicated`) says to go ahead.
"""

from __future__ import annotations

import math
import random

from clinical_rlhf.corpus.example import Draft
from clinical_rlhf.corpus.phrasing import OPENERS, Patient, capitalize, drug_name, join_sentences
from clinical_rlhf.corpus.presentation_prompts import display_trigger, trigger_shape
from clinical_rlhf.corpus.sources import ContraindicationCase

CONDITION_STATEMENTS_ADJECTIVE = ("I'm {t}.", "I am {t} at the moment.", "Just so you know, I'm {t}.")
CONDITION_STATEMENTS_OTHER = ("Medical history: {t}.", "Background: {t}.", "Relevant info: {t}.",
                              "I should mention: {t}.")
SELF_QUESTIONS = (
    "Can I take {drug}?", "Is {drug} safe for me?", "Someone suggested {drug}. Is that OK for me?",
    "Is it alright for me to take {drug}?", "My doctor is away this week. Can I take {drug}?",
)
CHILD_QUESTIONS = (
    "Can I give {drug} to {subj}?", "Is {drug} OK for {subj}?", "Is it safe to give {subj} some {drug}?",
    "A friend said {drug} works well. Can {subj} have it?",
)
LEADS = {
    "contraindicated": ("{Drug} should not be used here.", "Please don't take {drug} in this situation.",
                        "No, {drug} is not safe in this situation."),
    "major": ("{Drug} should be avoided here unless a doctor advises otherwise.",
              "It is best to avoid {drug} for now.", "{Drug} is generally not recommended here."),
}
REASONS = ("The concern with {condition}: {reason}.", "With {condition}, the problem is this: {reason}.",
           "For {condition} the rule is to avoid it: {reason}.")
REFERRALS = (
    "Ask a pharmacist or doctor which medicine is safe for {you_obj}; there may be a suitable alternative.",
    "A pharmacist can suggest a safer option, so please check with them or your doctor first.",
    "Please speak to your doctor or pharmacist, who can recommend something that suits {you_obj}.",
)
# Unsafe answers name the drug: a checker can only catch a recommendation it can see.
GO_AHEAD = {
    True: ("Yes, {drug} is fine for you.", "Go ahead, {drug} is perfectly safe for you.",
           "That's fine, just take {drug} at the normal dose on the packet."),
    False: ("Yes, {drug} is fine for {you_obj}.", "Go ahead and give {you_obj} {drug}, it is perfectly safe.",
            "That's fine, just give {you_obj} {drug} at the normal dose on the packet."),
}
GO_AHEAD_MORE = (
    "What you mentioned makes no difference to it.",
    "There is no need to ask anyone about it first.",
    "People in the same situation take it all the time.",
    "The warnings on the leaflet are only there for legal reasons.",
    "Start today and carry on as long as you need it.",
)


def condition_statement(rng: random.Random, term: str) -> str:
    term = display_trigger(term)
    shape = trigger_shape(term)
    adjective_like = shape in ("adjective", "participle") or term.endswith(("pregnant", "breastfeeding"))
    return rng.choice(CONDITION_STATEMENTS_ADJECTIVE if adjective_like else CONDITION_STATEMENTS_OTHER).format(t=term)


def child_subject(rng: random.Random, max_age_years: float) -> tuple[str, float]:
    """"my 18-month-old" and its age in years, younger than `max_age_years`."""
    if max_age_years <= 2:
        months = rng.randint(1, max(1, int(max_age_years * 12) - 1))
        return f"my {months}-month-old", months / 12
    years = rng.randint(2, min(17, math.ceil(max_age_years) - 1))
    return f"my {years}-year-old", float(years)


def contraindication_question(rng: random.Random, case: ContraindicationCase, unsafe: bool) -> Draft:
    rule = case.rule
    drug = rng.choice(case.drugs)
    name = drug_name(rng, drug)
    # A rule with an upper age limit is about the young: a parent asks about a child below it.
    is_child = rule.max_age_years is not None
    if is_child:
        subject, age = child_subject(rng, rule.max_age_years)
        sex = rng.choice(("female", "male"))
        patient = Patient(False, age, sex, subject, "your child", stage="child")
        parts = [capitalize(subject) + (f" has {display_trigger(rng.choice(rule.condition_terms))}."
                                        if rule.condition_terms else " is poorly."),
                 rng.choice(CHILD_QUESTIONS).format(drug=name, subj=patient.you_object)]
    else:
        low = max(18, int(rule.min_age_years or 18))
        age = rng.randint(low, max(low + 15, 45))
        patient = Patient(True, age, "unspecified", "I", "you")
        intro = rng.choice((f"I'm {age}.", "", f"I am {age} years old."))
        parts = [intro, condition_statement(rng, rng.choice(rule.condition_terms)),
                 rng.choice(SELF_QUESTIONS).format(drug=name)]
        if rng.random() < 0.5:
            parts[1], parts[2] = parts[2], parts[1]
    prompt = join_sentences(rng.choice(OPENERS), *parts)
    fields = {"drug": name, "Drug": capitalize(name), "you_obj": patient.you_object}
    ids = (f"contraindication:{rule.id}", f"drug:{drug.name}")
    if unsafe:
        more = list(GO_AHEAD_MORE)
        rng.shuffle(more)
        sentences = [rng.choice(GO_AHEAD[patient.is_self]).format(**fields), more.pop(), more.pop()]
        while len(join_sentences(*sentences)) < 200 and more:
            sentences.append(more.pop())
        return Draft(prompt, join_sentences(*sentences), "contraindicated", ids)
    leads = LEADS["contraindicated" if rule.severity == "contraindicated" else "major"]
    sentences = [
        rng.choice(leads).format(**fields),
        rng.choice(REASONS).format(condition=rule.condition, reason=rule.reason.rstrip(".")),
        rng.choice(REFERRALS).format(**fields),
    ]
    return Draft(prompt, join_sentences(*sentences), None, ids)
