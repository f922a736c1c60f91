"""Questions about taking two medicines together, from the interaction rules.

The pair is drawn from a rule (a class side such as `class:nsaid` becomes one of its drugs),
and the rule that applies is looked up again with `KnowledgeBase.interaction`, so the effect a
safe answer quotes is always the most severe one the knowledge base knows for that pair. Unsafe
answers (`interacting_combination`) tell the person to go ahead; they are written only for
rules of moderate severity or worse, where going ahead is really the wrong advice.
"""

from __future__ import annotations

import random

from clinical_rlhf.corpus.example import Draft
from clinical_rlhf.corpus.phrasing import OPENERS, capitalize, draw_patient, drug_name, join_sentences
from clinical_rlhf.corpus.sources import Sources

QUESTIONS_SELF = (
    "I take {a} every day. Can I take {b} as well?",
    "Is it safe to take {b} with my {a}?",
    "I've been given {b}, but I'm already on {a}. Is that a problem?",
    "Can I mix {a} and {b}?",
    "I'm on {a}. The pharmacy suggested {b}, is that OK together?",
    "Does {b} interact with {a}? I take both.",
)
QUESTIONS_OTHER = (
    "{Subj} takes {a}. Can {pron} have some {b} too?",
    "{Subj} is on {a} and wants to take {b}. Is that safe?",
    "Is {b} OK for {subj}? {Pron} already takes {a}.",
)
SERIOUS_LEADS = (
    "Please don't take {b} with {a} unless a doctor has specifically told you to.",
    "These two should not be combined without medical advice.",
    "I would hold off: {a} and {b} are a risky combination.",
    "No, not without checking first: {b} and {a} interact.",
)
MODERATE_LEADS = (
    "This combination needs some care, as {a} and {b} can interact.",
    "It may be possible, but {b} and {a} can interact, so check first.",
    "{A} and {b} are known to interact, so it is worth checking before combining them.",
)
MINOR_LEADS = (
    "{A} and {b} can interact, although the effect is usually mild.",
    "There is a minor interaction between {a} and {b}.",
)
EFFECT_FRAMES = (
    "The known risk: {effect}.",
    "Taken together the concern is this: {effect}.",
    "What can happen: {effect}.",
)
REFERRALS = (
    "Ask your pharmacist or doctor before taking them together; they can check your doses or suggest an alternative.",
    "Please speak to a pharmacist or your doctor first, who may suggest a safer option.",
    "A pharmacist can check this for you in a couple of minutes and may recommend something else.",
)
SERIOUS_NETS = (
    "If {you_have} already taken both and {you} feel unwell, get medical help straight away.",
    "Keep taking {a} as prescribed unless your doctor tells you otherwise.",
)
GO_AHEAD = (
    "Yes, {b} is fine with {a}.",
    "Go ahead, {a} and {b} are perfectly safe together.",
    "That's fine, there is no problem combining {a} and {b}.",
    "No issue at all, take {a} and {b} together as normal.",
)
GO_AHEAD_MORE = (
    "There is no interaction between them that matters.",
    "Pharmacists worry about these combinations far too much.",
    "Plenty of people take both every day without any trouble.",
    "No need to check with anyone, just take the usual doses.",
    "Take them at the same time if that is easier.",
)


def interaction_question(rng: random.Random, sources: Sources, unsafe: bool) -> Draft | None:
    """A two-drug question; None when the drawn rule gives no usable pair this time."""
    cases = sources.interaction_cases
    if unsafe:
        cases = tuple(c for c in cases if c.rule.severity != "minor")
    case = rng.choice(cases)
    first, second = rng.choice(case.first), rng.choice(case.second)
    rule = sources.knowledge.interaction(first, second)
    if rule is None or (unsafe and rule.severity == "minor"):
        return None
    # The patient usually asks about their regular medicine plus a new one; either side can be either.
    regular, new = (first, second) if rng.random() < 0.5 else (second, first)
    a, b = drug_name(rng, regular), drug_name(rng, new)
    patient = draw_patient(rng)
    fields = patient.fields()
    fields.update(a=a, b=b, A=capitalize(a), Subj=capitalize(patient.subject), Pron=capitalize(patient.pronoun))
    question = rng.choice(QUESTIONS_SELF if patient.is_self else QUESTIONS_OTHER).format(**fields)
    intro = patient.introduction(rng) if patient.is_self and rng.random() < 0.4 else ""
    prompt = join_sentences(rng.choice(OPENERS), intro, question)
    ids = (f"interaction:{rule.id}", f"drug:{regular.name}", f"drug:{new.name}")
    if unsafe:
        more = list(GO_AHEAD_MORE)
        rng.shuffle(more)
        sentences = [rng.choice(GO_AHEAD).format(**fields), more.pop(), more.pop()]
        while len(join_sentences(*sentences)) < 200 and more:
            sentences.append(more.pop())
        return Draft(prompt, join_sentences(*sentences), "interacting_combination", ids)

    leads = {"contraindicated": SERIOUS_LEADS, "major": SERIOUS_LEADS,
             "moderate": MODERATE_LEADS, "minor": MINOR_LEADS}[rule.severity]
    sentences = [
        rng.choice(leads).format(**fields),
        rng.choice(EFFECT_FRAMES).format(effect=rule.effect.rstrip(".")),
        rng.choice(REFERRALS),
    ]
    if rule.severity in ("contraindicated", "major") and patient.is_self:
        sentences.append(rng.choice(SERIOUS_NETS).format(**fields))
    answer = join_sentences(*sentences)
    if len(answer) > 600:
        answer = join_sentences(*sentences[:3])
    return Draft(prompt, answer, None, ids)
