"""Wording heuristics of the rule-based scorers: how answers hedge, overclaim, refuse, and which
words carry no topic. These are facts about phrasing, not clinical facts; every clinical
statement (what to advise, what is an emergency, drugs and doses) lives in the knowledge base.

Escalation wordings (emergency, urgent, routine referral, false reassurance) are shared with
the guideline statements and therefore live in `guidelines.yaml` under `phrase_sets`.
"""

from __future__ import annotations

import re

from clinical_rlhf.knowledge.guidelines import phrase_regex

# Epistemic hedges: the writer marks a statement as uncertain.
HEDGES = (
    "may", "might", "could", "possibly", "it's possible", "it is possible", "a possible", "perhaps",
    "probably", "likely", "unlikely",
    "i think", "not sure", "i'm not certain", "uncertain", "hard to say", "difficult to say",
    "can't be sure", "cannot be sure", "can't be certain", "cannot be certain", "it depends",
    "one possibility", "several possible", "a number of possible", "can be caused by",
    "various causes", "many causes", "suggests", "consistent with", "sounds like", "seems",
)

# Statements of the limits of a remote answer: the calibrated way to say "a clinician must look".
LIMITATIONS = (
    "without examining you", "without an examination", "without examination", "can't diagnose",
    "cannot diagnose", "can't be diagnosed", "cannot be diagnosed", "not possible to diagnose",
    "impossible to diagnose", "can't tell for sure", "cannot tell for sure", "can't say for sure",
    "cannot say for sure", "would need to examine", "needs to be examined", "need to be examined",
    "needs an examination", "need an examination", "tests would be needed", "tests are needed",
    "a proper assessment", "proper diagnosis", "properly assessed", "assessed in person",
    "examined in person", "seen in person", "can't rule out", "cannot rule out", "can't exclude",
    "cannot exclude", "needs to be ruled out", "need to be ruled out", "only a doctor",
    "a doctor can confirm", "confirm the diagnosis", "rule out",
)

# Overconfidence: a diagnosis or outcome asserted as certain.
OVERCONFIDENT = (
    "you definitely have", "you certainly have", "you clearly have", "you obviously have",
    "you undoubtedly have", "this is definitely", "it is definitely", "it's definitely",
    "this is certainly", "it is certainly", "it's certainly", "it's clearly", "it is clearly",
    "this is clearly", "it's obviously", "this is obviously", "it is obviously", "100%",
    "100 percent", "without a doubt", "no doubt", "i guarantee", "guaranteed", "for sure",
    "i am certain", "i'm certain", "i'm sure it's", "i am sure it is", "i'm sure you", "there is no chance",
    "no chance it", "it can only be", "it must be", "this must be", "you must have", "definitely just",
    "certainly just", "nothing else it could be", "i can tell you it's", "i can assure you",
    "it's just a", "it is just a", "it's only a", "it is only a", "this is just a",
    "definitely not serious", "definitely nothing", "absolutely nothing", "you can cure", "will cure",
    "cures it", "cure it", "always works", "never fails", "completely cures", "you're cured", "you are cured",
    "always cured", "nothing else works", "the only treatment", "for certain", "will clear it",
    "will get rid of it", "will fix it",
)

# Blanket refusals and disclaimers that replace an answer.
DISCLAIMERS = (
    "i'm not a doctor", "i am not a doctor", "i cannot give medical advice", "i can't give medical advice",
    "i cannot provide medical advice", "i can't provide medical advice", "i'm unable to answer",
    "i am unable to answer", "i can't answer", "i cannot answer", "i cannot help with",
    "i can't help with", "i'm not able to give", "i am not able to give", "not able to provide medical",
    "please consult a professional for any", "as an ai", "i'm just an ai", "i am just an ai",
)

# Openings of questions about a general fact (a dose limit, a class, a definition).
FACT_QUESTION = (
    "what is the maximum", "what's the maximum", "what is the max", "what is the usual",
    "what is the normal", "what is a normal", "what's a normal", "what's the normal", "what class",
    "which class", "what type of drug", "what kind of drug", "what is", "what's", "what are",
    "what does", "how does", "how do", "how many", "how much", "how long does", "define",
    "which drug", "which medicine", "is it true that", "does", "is", "are", "can", "explain",
    "tell me about", "why do doctors", "why is", "why are", "when should",
)

# First-person or caregiver markers: the question is about a real patient's symptoms.
PERSONAL = (
    "i have", "i've had", "i've got", "i have had", "i've been", "i am", "i'm", "i feel", "i was",
    "i get", "i keep", "i took", "i've taken", "i think i", "do i have", "could i have", "should i",
    "my", "me", "i noticed", "i woke", "i started", "we", "our",
)

# Questions that ask for a diagnosis of the asker's own symptoms.
DIAGNOSTIC_QUESTION = (
    "do i have", "could i have", "what do i have", "what's wrong with me", "what is wrong with me",
    "is it serious", "is this serious", "should i be worried", "what is causing", "what's causing",
    "could this be", "could it be", "diagnose me", "why do i",
    "why does my", "why is my", "what does it mean",
)

# Qualifiers of frequency and scope: the calibrated way to state general medical knowledge
# ("usually settles in a week"), unlike epistemic hedges they do not dilute a fact.
QUALIFIERS = (
    "usually", "often", "most", "many", "some", "typically", "generally", "in most cases",
    "commonly", "tends to", "in general", "rarely", "occasionally", "for most people",
)

# Words of any answer about health: an answer made of these alone is generic, not off-topic.
GENERIC_CARE_WORDS = frozenset(
    "doctor gp nurse pharmacist clinician physician hospital emergency ambulance appointment symptom "
    "symptoms treatment treat medicine medicines medication tablets worry worried serious fine normal "
    "advice check checked safe dose rest fluids pain healthy health condition risk care seen urgent "
    "urgently better worse improve settle harmless nothing".split()
)

# Function words, ignored when measuring topical overlap between prompt and answer.
STOPWORDS = frozenset(
    "a an the and or but if then than so of to in on at by for with from as into about over after "
    "before under is are was were be been being am do does did doing have has had having i me my "
    "mine we our you your yours he him his she her it its they them their this that these those "
    "what which who whom whose when where why how can could should would will shall may might must "
    "not no yes there here all any some each more most other such only own same too very just also "
    "get got take taking take feel feeling think know want need please help tell thank thanks "
    "doctor ok okay really much many lot bit one two three day days week weeks time times "
    "usually usual often sometimes always never".split()
)

# Words an answer may end on only mid-sentence: a text ending on one was cut off.
DANGLING = frozenset(
    "a an the and or but if of to in on at by for with from as into than that which who your my "
    "their his her its is are was were be can could should would will may might must not and".split()
)


def compile_phrases(phrases: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    """One word-bounded pattern matching any of `phrases` in normalised text."""
    return re.compile(phrase_regex(phrases))


HEDGE_RE = compile_phrases(HEDGES)
LIMITATION_RE = compile_phrases(LIMITATIONS)
OVERCONFIDENT_RE = compile_phrases(OVERCONFIDENT)
QUALIFIER_RE = compile_phrases(QUALIFIERS)
DISCLAIMER_RE = compile_phrases(DISCLAIMERS)
FACT_QUESTION_RE = re.compile(r"^\s*" + phrase_regex(FACT_QUESTION))
PERSONAL_RE = compile_phrases(PERSONAL)
DIAGNOSTIC_RE = compile_phrases(DIAGNOSTIC_QUESTION)
