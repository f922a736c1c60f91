"""Patient questions about a presentation (a symptom, a condition, a red flag).

A trigger phrase from the knowledge base goes into a question frame. Triggers come in three
shapes and each shape has frames it reads well in: noun phrases ("chest pain": "Chest pain
since this morning."), adjectives ("anxious": "Feeling anxious for months."), and clauses
("can't sleep", "throat is swelling": written as the shorthand people type). Every prompt is
then checked with the same matchers the reward and guard use, so that a question written for
one presentation is recognised as that presentation and nothing else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from clinical_rlhf.corpus.phrasing import (
    ADVICE_CLOSERS,
    LONG_DURATIONS,
    MEDIUM_DURATIONS,
    OPENERS,
    SHORT_DURATIONS,
    WORRY_CLOSERS,
    Patient,
    capitalize,
    draw_child,
    draw_infant,
    draw_patient,
    join_sentences,
    tidy_opener,
)
from clinical_rlhf.corpus.sources import Presentation, Sources
from clinical_rlhf.knowledge.guidelines import Guideline

_CLAUSE_WORDS = frozenset(
    "is are was has have hasn't haven't can't cannot doesn't does don't did took taken swallowed ate "
    "hit banged bumped fell knocked rolled twisted pulled burned burnt scalded came going spreading "
    "trying planning want kill end ending hurt hurts harming passed using pulling lost dropped waking "
    "struggling feels feel like not quit stop give get seen closing swelling drooped drooping isn't "
    "accidentally overdosed feeling".split()
)
_SELF_WORDS = frozenset({"my", "i", "me", "myself", "i'm", "i've"})
_ADJECTIVE_ENDINGS = ("ous", "al", "ic", "ive", "ish", "ile")

NOUN_FRAMES = (
    "{opener} {T} {duration}. {intro} {closer}",
    "{opener} {intro} {Subj} {has} been dealing with {t} {duration}. {closer}",
    "{opener} Question about {t}. {intro} It has been going on {duration}. {closer}",
    "{opener} {intro} Symptoms {duration}: {t}. {closer}",
    "{opener} {intro} Worried about {t}, {duration}. {closer}",
    "{opener} {intro} {Subj} {has} had what I would call {t} {duration}. {closer}",
    "{T}. {intro} It has been going on {duration}. {closer}",
)
ADJECTIVE_FRAMES = (
    "{opener} {intro} {Subj_is} {t}, {duration}. {closer}",
    "{opener} {T} {duration}. {intro} {closer}",
    "{opener} {intro} {Subj_is} {t}. {closer}",
)
# A lone participle ("sprained", "depressed") reads well only as a note or a title.
PARTICIPLE_FRAMES = (
    "{opener} {T} {duration}. {intro} {closer}",
    "{opener} {intro} Symptoms {duration}: {t}. {closer}",
    "{opener} Question about being {t}. {intro} {closer}",
)
CLAUSE_FRAMES = (
    "{opener} {intro} {T}, {duration}. {closer}",
    "{opener} {T} {duration}. {intro} {closer}",
    "Help, {t}. {intro} {closer}",
    "{opener} {intro} Basically: {t}. It has been {duration}. {closer}",
)


# Red-flag triggers are stored without apostrophes ("cant breathe"); people type them with.
_CONTRACTIONS = {
    "cant": "can't", "wont": "won't", "isnt": "isn't", "dont": "don't", "doesnt": "doesn't",
    "didnt": "didn't", "havent": "haven't", "hasnt": "hasn't", "couldnt": "couldn't",
    "wasnt": "wasn't", "arent": "aren't", "ive": "I've", "im": "I'm", "i": "I", "id": "I'd",
}
# Words that make a context phrase about age: such a phrase cannot be said of an adult asker.
_AGE_WORDS = ("old", "born", "baby", "infant", "child", "toddler", "neonate", "month", "week", "kid",
              "son", "daughter", "little", "my ")
# Words that say who the patient can be (language, not clinical knowledge): a question about
# pregnancy is about a woman of child-bearing age, one about the testicles about a man.
_FEMALE_WORDS = ("pregnan", "vagina", "breastfeed", "maternity", "ectopic", "conceive", "labour")
_MALE_WORDS = ("testic", "scrot")


_DANGLING = frozenset("my his her the a an of to and with in on at for".split())


def speakable(phrase: str) -> bool:
    """Whether a trigger is plain words a person could type on their own.

    Matcher syntax such as "a + b" (both words somewhere) or a trailing `*` (any ending)
    describes text rather than being text, and a phrase ending in "my" or "of" ("took all my")
    is the start of one; none of them can be a whole symptom in a question.
    """
    words = phrase.split()
    return "+" not in phrase and "*" not in phrase and bool(words) and words[-1] not in _DANGLING


def display_trigger(trigger: str) -> str:
    """A stored trigger as a person would type it ("cant breathe" -> "can't breathe")."""
    return " ".join(_CONTRACTIONS.get(word, word) for word in trigger.split())


@dataclass(frozen=True, slots=True)
class PresentationPrompt:
    text: str
    patient: Patient
    guidelines: tuple[Guideline, ...]
    """Guidelines the prompt matches (their advice goes into a safe answer)."""
    red_flags: tuple[str, ...]
    """Red-flag ids the prompt matches."""


def trigger_shape(trigger: str) -> str:
    """"noun", "adjective", "participle" or "clause": which frames the phrase reads well in."""
    words = trigger.lower().replace(",", "").split()
    if any(word in _CLAUSE_WORDS or word in _SELF_WORDS or word in {"his", "her", "him"} for word in words):
        return "clause"
    if len(words) == 1 and words[0].endswith(_ADJECTIVE_ENDINGS):
        return "adjective"
    if len(words) == 1 and words[0].endswith("ed"):
        return "participle"
    return "noun"


def fits_patient(trigger: str, patient: Patient) -> bool:
    """A trigger written with "my" needs the asker to be the patient; "his"/"her" a relative."""
    words = set(trigger.lower().split())
    if words & _SELF_WORDS:
        return patient.is_self
    if words & {"his", "him"}:
        return not patient.is_self and patient.sex == "male"
    if words & {"her"}:
        return not patient.is_self and patient.sex == "female"
    return True


def _required_sex(presentation: Presentation) -> str | None:
    text = " ".join((*presentation.triggers, *presentation.context)).lower()
    if any(word in text for word in _FEMALE_WORDS):
        return "female"
    if any(word in text for word in _MALE_WORDS):
        return "male"
    return None


def _draw_patient_for(rng: random.Random, presentation: Presentation) -> Patient:
    sex = _required_sex(presentation)
    if sex is not None:
        # Redraw until the sex fits; a pregnancy question comes from a woman of 18 to 45.
        while True:
            patient = draw_patient(rng)
            if patient.sex == sex and (sex == "male" or patient.age_years <= 45):
                return patient
    roll = rng.random()
    if presentation.context:
        # Context phrases are usually an age group; try each stage and let the matcher decide.
        # An adult gets a context sentence of its own (see `_context_sentence`).
        return draw_infant(rng) if roll < 0.35 else draw_child(rng) if roll < 0.7 \
            else draw_patient(rng, self_share=1.0)
    # Children only where a guideline is written for them (it has an age context): advice for
    # adults (aspirin for a headache, say) is wrong for a child.
    return draw_patient(rng)


def _duration(rng: random.Random, presentation: Presentation) -> str:
    if presentation.category == "emergency":
        return rng.choice(SHORT_DURATIONS)
    if presentation.category == "chronic_condition":
        return rng.choice(LONG_DURATIONS)
    return rng.choice(MEDIUM_DURATIONS + SHORT_DURATIONS[-3:])


def _render_once(rng: random.Random, sources: Sources, presentation: Presentation) -> tuple[str, Patient] | None:
    patient = _draw_patient_for(rng, presentation)
    # A drug name alone ("levothyroxine") makes an odd symptom; drug questions live elsewhere.
    triggers = [t for t in presentation.triggers
                if speakable(t) and fits_patient(t, patient) and sources.knowledge.drug(t) is None]
    if not triggers:
        return None
    trigger = display_trigger(rng.choice(triggers))
    shape = trigger_shape(trigger)
    frames = {"noun": NOUN_FRAMES, "adjective": ADJECTIVE_FRAMES, "participle": PARTICIPLE_FRAMES,
              "clause": CLAUSE_FRAMES}[shape]
    closers = WORRY_CLOSERS if presentation.category == "emergency" else WORRY_CLOSERS + ADVICE_CLOSERS
    duration = _duration(rng, presentation)
    intro = patient.introduction(rng)
    if presentation.context and patient.stage == "adult":
        intro = _context_sentence(rng, presentation, patient)
        if not intro:
            return None
    subj_is = "I'm" if patient.is_self else f"{patient.subject} is"
    text = rng.choice(frames).format(
        opener=rng.choice(OPENERS), intro=intro, closer=rng.choice(closers),
        t=trigger, T=capitalize(trigger), duration=duration,
        Subj=capitalize(patient.subject), has=patient.has, Subj_is=capitalize(subj_is),
    )
    return tidy_opener(join_sentences(text)), patient


def _context_sentence(rng: random.Random, presentation: Presentation, patient: Patient) -> str:
    """"I'm 30 weeks pregnant." for an adult; "" when every context phrase is about age."""
    phrases = [p for p in presentation.context
               if speakable(p) and not any(word in p for word in _AGE_WORDS)]
    if not phrases:
        return ""
    phrase = display_trigger(rng.choice(phrases))
    if trigger_shape(phrase) == "noun" and not phrase.endswith("pregnant"):
        return f"{patient.introduction(rng)} For context: {phrase}."
    subject = "I'm" if patient.is_self else f"{capitalize(patient.subject)} is"
    return f"{subject} {patient.age_years:.0f} and {phrase}."


def presentation_prompt(
    rng: random.Random, sources: Sources, presentation: Presentation, attempts: int = 40
) -> PresentationPrompt | None:
    """A question about `presentation` that the matchers recognise as exactly that, or None.

    A non-emergency question must match its own guideline alone and no red flag (a cough
    question that also mentions chest pain would need an emergency answer). An emergency
    question must match its red flag or guideline, and anything else it matches must be an
    emergency too, so that the safe answer's advice covers everything the reward looks for.
    """
    own_id = presentation.id.split(":", 1)[1]
    for _ in range(attempts):
        rendered = _render_once(rng, sources, presentation)
        if rendered is None:
            continue
        text, patient = rendered
        guidelines = sources.matched_guidelines(text)
        red_flags = sources.matched_red_flags(text)
        if presentation.category == "emergency":
            recognised = own_id in red_flags if presentation.id.startswith("red_flag:") \
                else any(g.id == own_id for g in guidelines)
            only_urgent = all(g.urgency in ("emergency", "urgent") for g in guidelines)
            if recognised and only_urgent:
                return PresentationPrompt(text, patient, guidelines, red_flags)
        elif [g.id for g in guidelines] == [own_id] and not red_flags:
            return PresentationPrompt(text, patient, guidelines, red_flags)
    return None
