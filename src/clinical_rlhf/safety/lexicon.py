"""The language cues the guard reads context from, and the character tables it uses against evasion.

The cue phrases (negation, history, hypotheticals, emergency advice, playing down, warnings and
approvals, conversation cues, number words) are clinical language data: they live in
`data/knowledge/language.yaml`, each set with its purpose and source, and are bound here to the
names the guard's modules use. Phrases are written as the normaliser sees text: lower case,
apostrophes dropped ("don't" is "dont"), determiners removed (see `DETERMINERS`).

The evasion tables below are not language but Unicode facts: which characters look like or
render as which.
"""

from __future__ import annotations

from clinical_rlhf.knowledge.language import load_language

LANGUAGE = load_language()

DETERMINERS = LANGUAGE.words("determiners")

# ----------------------------------------------------------------------------- context of a mention
NEGATION_BEFORE = LANGUAGE.phrases("negation_before")
NEGATION_AFTER = LANGUAGE.phrases("negation_after")
PSEUDO_NEGATION = LANGUAGE.phrases("pseudo_negation")
SCOPE_TERMINATORS = LANGUAGE.words("scope_terminators")
HISTORY_BEFORE = LANGUAGE.phrases("history_before")
HISTORY_AFTER = LANGUAGE.phrases("history_after")
RECENT_UNITS = LANGUAGE.words("recent_units")
HYPOTHETICAL_BEFORE = LANGUAGE.phrases("hypothetical_before")
HYPOTHETICAL_AFTER = LANGUAGE.phrases("hypothetical_after")
CONDITIONAL_OPENERS = LANGUAGE.phrases("conditional_openers")
CURRENT_OVERRIDES = LANGUAGE.phrases("current_overrides")
NEGATION_REACH = LANGUAGE.reach("negation_before")
HISTORY_REACH = LANGUAGE.reach("history_before")
HYPOTHETICAL_REACH = LANGUAGE.reach("hypothetical_before")
STANCE_REACH = LANGUAGE.reach("approval")

# ----------------------------------------------------------------------------- answer-level cues
EMERGENCY_ADVICE = LANGUAGE.phrases("emergency_advice")
DOWNPLAY = LANGUAGE.phrases("downplay")
NEGATING_WORDS = LANGUAGE.words("negating_words")
DRUG_WARNING = LANGUAGE.phrases("drug_warning")
STRONG_WARNING = LANGUAGE.phrases("strong_warning")
COMBINATION_WARNING = LANGUAGE.phrases("combination_warning")
COMBINATION_DENIAL = LANGUAGE.phrases("combination_denial")
SAFETY_CLAIMS = LANGUAGE.phrases("safety_claims")
DOSE_LIMIT = LANGUAGE.phrases("dose_limit")
DOSE_DANGER = LANGUAGE.phrases("dose_danger")
DOSE_EXCESS = LANGUAGE.phrases("dose_excess")
DOSE_CAPS = LANGUAGE.phrases("dose_caps")
DOSE_INCREASE = LANGUAGE.phrases("dose_increase")
MISSED_DOSE_CATCH_UP = LANGUAGE.phrases("missed_dose_catch_up")
MISSED_DOSE_WORDS = LANGUAGE.phrases("missed_dose_words")
DOSE_CONDITION_CLINICIANS = LANGUAGE.words("dose_condition_clinicians")
DOSE_RESTATEMENTS = LANGUAGE.words("dose_restatements")
APPROVAL = LANGUAGE.phrases("approval")
COMBINATION_OKAY = LANGUAGE.phrases("combination_okay")

# ----------------------------------------------------------------------------- conversations
CONVERSATION_RESOLVED = LANGUAGE.phrases("conversation_resolved")
CONVERSATION_PAST_REFERENCE = LANGUAGE.phrases("conversation_past_reference")
CONVERSATION_RECURRED = LANGUAGE.phrases("conversation_recurred")

# ----------------------------------------------------------------------------- doses and decoding
DOSE_WORDS = LANGUAGE.phrases("dose_words")
LEET_VOCABULARY = LANGUAGE.phrases("everyday_words")
NUMBER_WORDS = LANGUAGE.number_words
OVERDOSE_VERBS = LANGUAGE.words("overdose_verbs")

# ----------------------------------------------------------------------------- evasion tables

# Cyrillic and Greek letters that look like Latin ones (the confusables most used to dodge
# filters; Unicode TR39 confusables data), mapped to the Latin letter they imitate.
HOMOGLYPHS = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h", "ԁ": "d", "ɡ": "g",
    "ո": "n", "ս": "u", "ԛ": "q", "ԝ": "w", "ӏ": "l", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i",
    "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "μ": "u", "ϲ": "c",
    "ϳ": "j", "ℓ": "l", "ı": "i", "ł": "l", "ø": "o", "đ": "d",
}
# Characters that render as nothing (or as a hyphenation point): removed before matching.
INVISIBLE = frozenset({
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u2061", "\u2062",
    "\u2063", "\u2064", "\u034f", "\u115f", "\u1160", "\u17b4", "\u17b5",
})
# Digits and symbols read as letters inside a word ("ch3st p4in"); 1 is tried as i, then l.
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s"}
LEET_ALTERNATIVES = {"1": "l", "9": "q", "0": "o"}
