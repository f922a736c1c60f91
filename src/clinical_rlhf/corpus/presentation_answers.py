"""Answers to presentation questions: safe ones built from the knowledge, unsafe ones on purpose.

A safe answer says what the guideline says must be advised (its advice points, in the
knowledge base's own words) inside wording that fits the urgency: emergencies lead with
calling emergency services now, same-day problems with being seen today, long-term conditions
and everyday complaints with hedged self-care and when to see a doctor.

Unsafe answers reproduce how web text goes wrong: an emergency waved away (`dismisses_red_flag`)
or a confident answer with no hedge and no safety net (`overconfident_no_hedging`), sometimes
recommending what the guideline says must not be done. Their wording is invented here; it
carries no clinical fact, only the failure.
"""

from __future__ import annotations

import random
import re

from clinical_rlhf.corpus.phrasing import Patient, capitalize, join_sentences
from clinical_rlhf.corpus.presentation_prompts import PresentationPrompt
from clinical_rlhf.corpus.sources import Presentation, Sources
from clinical_rlhf.knowledge.guidelines import AdvicePoint, normalize_text

MAX_SENTENCES = 5
MAX_CHARS = 600

EMERGENCY_LEADS = (
    "Please call emergency services now.",
    "This needs emergency care: call an ambulance right now.",
    "Call emergency services immediately; do not wait for it to settle.",
    "Please treat this as an emergency and call an ambulance now.",
    "Call your local emergency number straight away.",
    "This could be serious, so call emergency services right away.",
)
EMERGENCY_REASONS = (
    "Symptoms like these can be a sign of something serious and need to be checked in person straight away.",
    "It is not possible to rule out a serious cause without an examination, and early treatment matters.",
    "Even if it seems to be easing, this needs to be assessed by a doctor today, not tomorrow.",
    "Getting help quickly can make a real difference to how this turns out.",
)
URGENT_LEADS = (
    "{Patient} should be seen by a doctor urgently, today.",
    "Please get same-day medical advice for this.",
    "This needs an urgent assessment as soon as possible, so contact urgent care today.",
    "This needs to be seen by a doctor today rather than waiting for a routine appointment.",
)
URGENT_ESCALATION = (
    "If symptoms get worse, or you are worried at any point, call emergency services.",
    "If things get worse at any point, call an ambulance.",
    "Call emergency services straight away if the symptoms worsen.",
)
# Each lead carries one hedge ("may", "likely", "probably"): a remote answer about someone's
# symptoms should mark its uncertainty once, without drowning the advice in it.
ROUTINE_LEADS = (
    "This is something many people live with, and it is likely to be manageable with the right plan.",
    "Thanks for asking; this is common and there is a lot that may help.",
    "It is worth taking seriously, although it can probably be kept well under control.",
    "Without examining {you_obj} it is hard to be specific, but there is a lot that may help.",
)
SELF_CARE_LEADS = (
    "This is likely to settle, and in most cases it can be managed at home.",
    "This is very common and will probably get better with simple self-care.",
    "Most of the time this settles with some simple measures, though it may take a little while.",
    "Sorry to hear {you_are} dealing with this; it can most likely be handled at home.",
)
ROUTINE_SAFETY_NETS = (
    "Talk to your doctor about the right plan for {you_obj}, and get checked sooner if symptoms get worse.",
    "A review with your GP is a good idea, and see a doctor promptly if it gets worse.",
    "Book an appointment with your doctor to discuss it, sooner if you notice anything new.",
    "Your doctor can tailor this to {you_obj}; make an appointment if symptoms persist or worsen.",
)
SELF_CARE_SAFETY_NETS = (
    "See a doctor if it gets worse, does not improve, or you notice anything that concerns you.",
    "If symptoms persist or get worse, speak to a pharmacist or your GP.",
    "Get it checked by a doctor if it does not improve or if you develop new symptoms.",
    "A pharmacist can advise as well; see your doctor if it lasts or worsens.",
)
ADVICE_FRAMES = (
    "{D}.", "{D}.", "The usual advice: {d}.", "What tends to help: {d}.", "Recommended: {d}.",
    "Guidance suggests: {d}.",
)
# For emergencies and same-day problems: "what tends to help" undersells an instruction.
URGENT_ADVICE_FRAMES = ("{D}.", "{D}.", "Important: {d}.", "Guidance is clear: {d}.", "Also: {d}.")
WHILE_WAITING = {
    True: ("Do not stay on your own while you wait for help.", "Unlock the door and keep your phone with you."),
    False: ("Stay with {you_obj} until help arrives.", "Keep {you_obj} company until help arrives."),
}

DISMISSIVE_OPENERS = (
    "That sounds like nothing serious.",
    "Honestly, this is probably nothing to worry about.",
    "I would not worry too much about this.",
    "This happens to lots of people and it is rarely anything serious.",
    "Try not to panic, this is almost always harmless.",
)
DISMISSIVE_EXPLANATIONS = (
    "Most of the time it is down to stress, tiredness or a bad night's sleep.",
    "It is most likely just your body reacting to a busy week.",
    "These things tend to come and go without any real cause.",
    "Plenty of people get this and it turns out to be nothing.",
)
DISMISSIVE_HOME = (
    "Rest at home, drink some water and see how things are in the morning.",
    "Sleep it off and it should pass by tomorrow.",
    "Just keep an eye on it at home for a few days.",
    "Have a lie down and give it a bit of time to pass.",
)
DISMISSIVE_DELAY = (
    "There is no need to bother anyone with it tonight.",
    "If it is still there in a week or two, you could mention it at your next check-up.",
    "Going to hospital for this would be overkill.",
)
OVERCONFIDENT_OPENERS = (
    "This is definitely nothing serious.",
    "I can assure you this is nothing to worry about.",
    "It's just a minor thing, I can tell you that for sure.",
    "There is no doubt about it, this is completely harmless.",
    "I am certain this is nothing.",
)
OVERCONFIDENT_MIDDLES = (
    "Everyone gets this at some point and it is never anything more.",
    "People make far too much fuss about this.",
    "I have seen this hundreds of times and it always goes the same way.",
    "There is nothing else it can be.",
)
OVERCONFIDENT_CLOSERS = (
    "It will be completely gone within a couple of days, guaranteed.",
    "Nobody needs to look at it.",
    "Do exactly this and it will sort itself out, 100%.",
    "That is all there is to it.",
)
OVERCONFIDENT_ADVICE_FRAMES = ("{D}, and that will fix it completely.", "All you need: {d}.")
_IMPERATIVE_VERBS = frozenset(
    "take give lie drive sleep rest massage make manage treat watch wait put apply use keep walk run "
    "stay stop drink ignore go have eat induce sponge".split()
)


def lower_first(text: str) -> str:
    """Lower-case a sentence-initial word ("Call" -> "call") but keep acronyms ("NSAID", "HbA1c")."""
    first, _, rest = text.partition(" ")
    if first == "A" or (first[:1].isupper() and first[1:].islower()):
        return first.lower() + (" " + rest if rest else "")
    return text


def advice_sentence(rng: random.Random, point: AdvicePoint, frames: tuple[str, ...] = ADVICE_FRAMES) -> str:
    """One advice point in a sentence, in the knowledge base's own wording (its description).

    Where the description does not itself contain one of the point's phrases (the wording the
    reward looks for), a phrase is added as an example, so the advice is recognisably there.
    """
    description = point.description.strip().rstrip(".")
    frame = rng.choice(frames)
    sentence = frame.format(D=capitalize(description), d=lower_first(description))
    if not point.spans(normalize_text(description)):
        example = max(point.phrases, key=lambda phrase: (len(phrase.split()), phrase)).rstrip("*")
        sentence = f"{sentence.rstrip('.')} ({example})."
    return sentence


def _missing(points: list[AdvicePoint], sentences: list[str]) -> list[AdvicePoint]:
    """Points not yet said by `sentences` (an emergency lead already says "call an ambulance")."""
    said = normalize_text(" ".join(sentences))
    return [point for point in points if not point.spans(said)]


def _fill(text: str, patient: Patient) -> str:
    fields = patient.fields()
    fields["Patient"] = capitalize(patient.answer_name)
    return text.format(**fields)


def _fit(sentences: list[str], optional: set[int]) -> str:
    """Drop optional sentences (from the end) until the answer has ≤ 5 sentences and ≤ 600 chars."""
    kept = list(range(len(sentences)))
    for index in sorted(optional, reverse=True):
        if len(kept) <= MAX_SENTENCES and len(join_sentences(*(sentences[i] for i in kept))) <= MAX_CHARS:
            break
        kept.remove(index)
    return join_sentences(*(sentences[i] for i in kept))


def safe_answer(rng: random.Random, sources: Sources, prompt: PresentationPrompt,
                presentation: Presentation) -> str:
    patient = prompt.patient
    urgency = "emergency" if prompt.red_flags else max(
        (g.urgency for g in prompt.guidelines), key=("self_care", "routine", "urgent", "emergency").index,
        default=presentation.urgency)
    points = [p for g in prompt.guidelines for p in g.must_advise]
    # A red flag's one-line advice is quoted when the question was written from that red flag,
    # or when no guideline covers the question; otherwise the guideline's points say it better
    # for the presentation asked about (a red flag can be broader than the question).
    quoted_flags = [flag for flag in prompt.red_flags
                    if presentation.id == f"red_flag:{flag}" or not prompt.guidelines]
    red_flag_advice = [sources.knowledge.red_flag(flag).advice for flag in quoted_flags]
    # Phrase matching does not see negation: "do not drive yourself" in a red flag's advice
    # reads as the guideline's "drive yourself". Such a sentence is left out rather than
    # teaching the reward's matcher a contradiction (the emergency lead still says what to do).
    must_not = [p for g in prompt.guidelines for p in g.must_not]
    red_flag_advice = [text for text in red_flag_advice
                       if not any(p.spans(normalize_text(text)) for p in must_not)]
    sentences: list[str] = []
    optional: set[int] = set()
    if urgency == "emergency":
        sentences.append(_fill(rng.choice(EMERGENCY_LEADS), patient))
        sentences += red_flag_advice
        sentences += [advice_sentence(rng, p, URGENT_ADVICE_FRAMES) for p in _missing(points, sentences)]
        optional.add(len(sentences))
        sentences.append(rng.choice(EMERGENCY_REASONS))
        optional.add(len(sentences))
        sentences.append(_fill(rng.choice(WHILE_WAITING[patient.is_self]), patient))
    elif urgency == "urgent":
        sentences.append(_fill(rng.choice(URGENT_LEADS), patient))
        sentences += [advice_sentence(rng, p, URGENT_ADVICE_FRAMES) for p in points]
        sentences.append(_fill(rng.choice(URGENT_ESCALATION), patient))
    else:
        leads, nets = (ROUTINE_LEADS, ROUTINE_SAFETY_NETS) if urgency == "routine" \
            else (SELF_CARE_LEADS, SELF_CARE_SAFETY_NETS)
        sentences.append(_fill(rng.choice(leads), patient))
        sentences += [advice_sentence(rng, p) for p in points]
        sentences.append(_fill(rng.choice(nets), patient))
    return _fit(sentences, optional)


def harmful_action(rng: random.Random, presentation: Presentation) -> str | None:
    """A "must not" phrase that reads as an instruction ("take more insulin"), or None."""
    actions = []
    for point in presentation.must_not:
        for phrase in point.phrases:
            words = phrase.rstrip("*").split()
            if len(words) >= 2 and words[0] in _IMPERATIVE_VERBS and not phrase.endswith("*"):
                actions.append(phrase)
    return rng.choice(sorted(actions)) if actions else None


def dismissive_answer(rng: random.Random, prompt: PresentationPrompt, presentation: Presentation) -> str:
    """An emergency waved away: reassurance, a home remedy, no call for help."""
    patient = prompt.patient
    sentences = [rng.choice(DISMISSIVE_OPENERS), rng.choice(DISMISSIVE_EXPLANATIONS)]
    action = harmful_action(rng, presentation) if rng.random() < 0.6 else None
    if action:
        sentences.append(f"Just {action.removeprefix('just ')}.")
    sentences.append(_fill(rng.choice(DISMISSIVE_HOME), patient))
    if len(sentences) < 4 or rng.random() < 0.5:
        sentences.append(rng.choice(DISMISSIVE_DELAY))
    return _fit(sentences, optional={1})


def _refers_onward(sources: Sources, normalized: str) -> bool:
    """Whether a text sends the reader to someone (doctor, pharmacist, urgent care) or says when to."""
    if any(sources.escalation[name].search(normalized) for name in _ONWARD_SETS if name in sources.escalation):
        return True
    return bool(_ONWARD_WORDS.search(normalized))


def overconfident_answer(rng: random.Random, sources: Sources, prompt: PresentationPrompt,
                         presentation: Presentation) -> str:
    """Certainty with no hedge and no safety net; half the time it also advises a "must not"."""
    sentences = [rng.choice(OVERCONFIDENT_OPENERS)]
    action = harmful_action(rng, presentation) if rng.random() < 0.5 else None
    points = [p for g in prompt.guidelines for p in g.must_advise
              if not _refers_onward(sources, normalize_text(p.description))]
    if action:
        sentences.append(f"You need to {action.removeprefix('just ')}.")
    elif points:
        sentences.append(advice_sentence(rng, rng.choice(points), OVERCONFIDENT_ADVICE_FRAMES))
    # Descriptions in the knowledge base sometimes hedge ("usually", "if needed"); an
    # overconfident answer is defined by having none, so such a sentence is left out.
    sentences = [s for s in sentences if not _HEDGED.search(s.lower())]
    middles = list(OVERCONFIDENT_MIDDLES)
    rng.shuffle(middles)
    sentences.append(middles.pop())
    sentences.append(rng.choice(OVERCONFIDENT_CLOSERS))
    while len(join_sentences(*sentences)) < 200 and middles:
        sentences.insert(-1, middles.pop())
    return join_sentences(*sentences)


_ONWARD_SETS = ("emergency_now", "urgent_care", "routine_referral", "safety_net_worse")
_ONWARD_WORDS = re.compile(r"\b(seek|see a|doctor|gp|clinician|pharmacist|nurse|urgent|help|team|referral)\b")
_HEDGED = re.compile(r"\b(may|might|could|usually|often|probably|likely|possibl[ey]|perhaps|if needed|as advised|"
                     r"suggest\w*|seem\w*|sounds like|depends)\b")
