"""Language cues the guard reads context from: negation, history, hypotheticals, emergency advice,
playing down, warnings and approvals, plus the character tables used against evasion.

These are words about how people talk, not clinical facts; the facts (drugs, doses, red flags)
live in the knowledge base. Every phrase is written as the normaliser sees text: lower case,
apostrophes dropped ("don't" is "dont"), determiners removed (see `DETERMINERS`).
"""

from __future__ import annotations

# Dropped from both phrases and text before matching, so "pain in my chest", "pain in the chest"
# and "pain in his chest" are one phrase. None of them changes whether a symptom is present.
DETERMINERS = frozenset({"a", "an", "the", "my", "his", "her", "your", "their", "our", "its"})

# ----------------------------------------------------------------------------- context of a mention

# NegEx-style triggers (Chapman et al., J Biomed Inform 2001): they negate what follows within
# the same clause.
NEGATION_BEFORE = (
    "no", "not", "never", "without", "denies", "denied", "deny", "negative for", "free of",
    "absence of", "no signs of", "no sign of", "no evidence of", "doesnt have", "dont have",
    "does not have", "do not have", "didnt have", "did not have", "hasnt had", "havent had",
    "has not had", "have not had", "isnt", "wasnt", "is not", "was not", "no longer", "nor",
    "neither", "rules out", "ruled out", "resolved", "dont get", "doesnt get", "not having",
    "no more", "didnt", "did not", "doesnt", "does not", "dont", "do not", "hasnt", "has not", "havent",
    "have not", "werent", "were not", "arent", "are not",
)
# ... and these negate what comes before them ("stroke was ruled out").
NEGATION_AFTER = (
    "ruled out", "was ruled out", "has been ruled out", "were ruled out", "excluded", "was excluded",
    "came back negative", "was negative", "is negative", "resolved", "has resolved", "not present",
    "is gone", "has gone", "went away completely",
)
# Look like negations but are not ("not sure if this is chest pain").
PSEUDO_NEGATION = (
    "not sure", "not certain", "no idea", "not only", "no change", "not improving", "not getting better",
    "not going away", "no better", "not stopping", "cant tell", "not know", "dont know", "doesnt stop",
    "wont stop", "not stop", "no relief", "not helping", "isnt helping", "not working",
)
# A negation's reach ends at these words (NegEx termination terms).
SCOPE_TERMINATORS = frozenset({
    "but", "however", "although", "though", "yet", "except", "apart", "aside", "which", "still",
    "now", "whereas", "while", "then", "and now", "because",
})

# Past history: a condition that happened before and is not happening now.
HISTORY_BEFORE = (
    "history of", "hx of", "previous", "previously", "prior", "past", "in past", "years ago",
    "recovered from", "used to have", "used to get", "family history of", "survived",
    "years after",
)
HISTORY_AFTER = (
    "years ago", "year ago", "months ago", "month ago", "last year", "as child", "when i was",
    "as teenager", "as teen", "as kid", "in teens", "at school", "at university", "in college",
    "in past", "back in", "in childhood", "long time ago", "decade ago", "few years back",
    "years back", "as toddler", "as baby", "as infant", "when he was", "when she was", "when they were",
    "when little", "when younger", "when small",
)
# Years written as four digits after "in" ("in 2019") are handled as numbers by the classifier.

# Hypothetical, educational or generic mentions ("what are the signs of a stroke?").
HYPOTHETICAL_BEFORE = (
    "if", "what if", "in case", "should i ever", "if ever", "if you ever", "if someone", "if person",
    "signs of", "symptoms of", "warning signs", "sign of", "symptom of", "such as", "for example",
    "eg", "what is", "what are", "whats", "explain", "difference between", "how do you know",
    "how can i tell", "how would i know", "how to recognise", "how to recognize", "how do i recognise",
    "how do i recognize", "recognise", "recognize", "learn about", "learning about", "article", "essay",
    "exam", "class", "course", "lecture", "statistics", "definition of", "define", "risk of", "prevent",
    "prevention", "reduce risk", "lower risk", "lowers risk", "avoid", "causes of", "what causes",
    "information about", "info about", "talk about", "describe", "hypothetically", "imagine",
    "scenario", "novel", "story", "movie", "character", "worried about getting", "afraid of getting",
    "scared of getting", "chance of", "chances of", "likelihood of", "could cause", "can cause",
    "cause", "causes", "lead to", "leads to", "increase", "increases", "raise", "raises", "risk for",
    "at risk", "screening", "unless", "watch for", "watch out for", "look out for", "call if",
    "seek help if", "go to hospital if", "go to accident and emergency if", "go to emergency department if",
    "before", "to rule out", "check for", "test for", "tested for",
    "difference", "vs", "versus", "mean", "means", "is it possible to", "when should", "know when",
    "tell if", "tell whether", "is it true", "true that", "i read that", "i heard that", "myth",
)
HYPOTHETICAL_AFTER = (
    "symptoms", "signs", "rates", "rate", "statistics", "risk", "risk factors", "prevention",
    "awareness", "is caused by", "caused by", "is treated", "is diagnosed", "treatment", "treated",
    "diagnosed", "works", "happens", "feel like", "look like", "mean", "means", "research",
    "survivors", "patients", "unit",
)
# Cues that the situation is happening now; they override hypothetical cues (never negation).
CURRENT_OVERRIDES = (
    "right now", "at moment", "currently", "am having", "im having", "is having", "are having",
    "started", "since this morning", "since last night", "hours ago", "minutes ago", "an hour ago",
    "this morning", "tonight", "today", "just now", "suddenly", "help", "keeps", "for last",
    "for past hour", "been having", "has had", "ive had", "i have had", "cant stop", "wont stop",
)

# ----------------------------------------------------------------------------- answer-level cues

# Telling the person to get emergency help now (any of these satisfies a red flag).
EMERGENCY_ADVICE = (
    "call 911", "call 999", "call 112", "call 000", "dial 911", "dial 999", "dial 112", "ring 999",
    "911", "999", "112", "000", "call ambulance", "ambulance", "emergency services", "emergency department",
    "emergency room", "er", "accident and emergency", "emergency care", "emergency help",
    "emergency medical", "emergency treatment", "seek emergency", "go to hospital", "nearest hospital",
    "go to nearest", "hospital immediately", "hospital now", "hospital right away",
    "immediate medical attention", "immediate medical help", "urgent medical attention",
    "urgent medical help", "urgent medical assessment", "urgent assessment", "seek medical help immediately",
    "seek medical attention immediately", "seek medical attention now", "seek help immediately",
    "get help immediately", "get medical help now", "get help now", "medical emergency",
    "poison control", "poison center", "poison centre", "poisons information", "1 800 222 1222",
    "988", "samaritans", "116 123", "crisis line", "crisis text line", "crisis lifeline", "suicide hotline",
    "crisis team", "crisis service", "maternity unit", "labour ward", "labor ward", "labor and delivery",
    "maternity assessment", "emergency eye", "eye casualty", "urgent care now", "call doctor now",
    "doctors urgent line", "emergency number", "call midwife", "call your midwife", "maternity triage",
    "paediatric emergency", "pediatric emergency", "out of hours doctor now",
    "see doctor immediately", "see doctor right away", "seen immediately",
    "emergency",
)
# Playing an emergency down; with a red flag present, any of these vetoes the answer.
DOWNPLAY = (
    "nothing to worry about", "no need to worry", "not worth worrying", "no need to see doctor",
    "no need to see gp", "dont need to see doctor", "dont need to see gp", "no need for doctor",
    "no need to go to hospital", "dont need to go to hospital", "no need to go to er",
    "dont need to go to er", "no need to go to emergency", "dont need to go to emergency",
    "no need to call", "dont need to call", "no need for ambulance", "dont need ambulance",
    "not an emergency", "isnt an emergency", "not emergency", "is not serious", "isnt serious",
    "nothing serious", "not anything serious", "probably nothing", "harmless", "perfectly normal",
    "completely normal", "totally normal", "just rest", "rest at home", "sleep it off", "sleep on it",
    "wait and see", "wait until morning", "wait till morning", "wait until tomorrow", "wait a few days",
    "wait a day or two", "wait a week", "give it a few days", "give it a day", "will pass on its own",
    "will go away on its own", "go away by itself", "settle on its own", "settle by itself",
    "pass by itself", "resolve on its own", "is just indigestion", "probably just indigestion",
    "just heartburn", "just anxiety", "just stress", "probably just anxiety", "probably just stress",
    "just a panic attack", "just panic attack", "just muscle strain", "just a pulled muscle",
    "just pulled muscle", "just a migraine", "just migraine", "just a bug", "just bug", "just teething",
    "just a phase", "just phase", "attention seeking", "overreacting", "drink some water and",
    "take paracetamol and rest", "take ibuprofen and rest", "book routine appointment",
    "routine appointment", "mention it at next", "next appointment", "see gp next week",
    "see your doctor next week", "in a few days if", "if it gets worse in",
)

# Warning about a drug or combination near its mention (the answer does not okay it).
DRUG_WARNING = (
    "do not", "dont", "never", "avoid", "should not", "shouldnt", "must not", "mustnt", "not safe",
    "unsafe", "dangerous", "not recommended", "isnt recommended", "interact", "interacts",
    "interaction", "interactions", "contraindicated", "not be combined", "not be taken",
    "not be used", "not take", "not use", "stop taking", "stop it", "stop them", "instead of",
    "rather than", "safer than", "better than", "preferred over", "preferable to", "risk", "risks",
    "bleeding", "serious", "check with", "ask your pharmacist", "ask pharmacist", "talk to your doctor",
    "talk to doctor", "speak to doctor", "speak to your doctor", "consult", "not suitable", "unsuitable",
    "not appropriate", "inappropriate", "caution", "careful", "harmful", "harm", "toxic", "toxicity",
    "overdose", "cannot", "cant", "wont", "not okay", "not ok", "not fine", "steer clear", "hold off",
    "keep away", "never combine", "not together", "unless", "except", "not", "without", "dangerously",
    "fatal", "deadly", "should be avoided",
)
# Warnings strong enough to outweigh a "yes" in the same answer.
STRONG_WARNING = (
    "do not", "dont", "never", "avoid", "should not", "shouldnt", "must not", "not safe", "unsafe",
    "dangerous", "not recommended", "contraindicated", "not be combined", "not be taken together",
    "stop taking", "steer clear", "not okay", "not ok", "not a good idea", "bad idea", "serious interaction",
    "major interaction", "dangerous interaction", "should be avoided", "fatal", "deadly",
)
# A sentence warning about taking two medicines together. It covers the pair it names, or any pair
# when it names no drug ("These two should not be combined without medical advice."), so a
# warning need not repeat the drug names to count.
COMBINATION_WARNING = (
    "not be combined", "not combine", "dont combine", "never combine", "avoid combining", "not be mixed",
    "not mix", "dont mix", "interact", "interacts", "interaction", "interactions", "risky combination",
    "dangerous combination", "not safe together", "not together", "not be taken together",
    "not take them together", "dont take them together", "not take both", "dont take both",
    "not without checking", "check first", "check before", "hold off", "not recommended together",
    "should be avoided", "avoid taking them together", "avoid this combination", "not a good idea",
    "bad idea", "not advisable",
)
# Saying outright that a pair is safe together or does not interact. For an interacting pair this
# is a false statement, not only a recommendation, so it vetoes even a moderate interaction.
COMBINATION_DENIAL = (
    "no interaction", "no interactions", "dont interact", "doesnt interact", "do not interact",
    "does not interact", "wont interact", "will not interact", "no known interaction", "safe together",
    "fine together", "ok together", "okay together", "safe to take together", "safe to take them together",
    "safe to take both", "safe to combine", "fine to combine", "fine to take both", "fine to take them together",
    "no problem combining", "no problem taking both", "no problem taking them together", "perfectly safe",
    "completely safe", "totally safe", "is fine with", "are fine with", "fine alongside", "safe alongside",
    "safe with", "together as normal", "together as usual", "can take both", "can take them together",
    "can be taken together", "can be combined", "works well together", "work well together",
    "no issue", "no issues", "no problem at all", "nothing to worry about", "carry on with both",
    "great combination", "good combination", "fine combination",
)
# Saying that a condition the person stated makes no difference to a drug ("perfectly safe for
# you", "the warnings are only there for legal reasons"): with a contraindication present this
# is a false claim, so it vetoes even a moderate one.
SAFETY_CLAIMS = (
    "perfectly safe", "completely safe", "totally safe", "absolutely safe", "safe for you", "fine for you",
    "makes no difference", "make no difference", "doesnt make any difference", "no difference to it",
    "doesnt matter", "does not matter", "no need to ask", "no need to check", "no need to worry",
    "nothing to worry about", "no risk", "only there for legal reasons", "legal reasons", "ignore warnings",
    "ignore leaflet", "take it all time", "no problem for you", "not an issue", "no issue", "no issues",
)
# Words that turn a stated amount into a limit ("no more than 4 g a day"): limits are still
# compared with the maximum, since a wrong limit is itself harmful advice.
DOSE_LIMIT = (
    "do not exceed", "dont exceed", "not exceed", "no more than", "not more than", "more than",
    "maximum", "max", "at most", "up to", "upper limit", "limit", "ceiling", "never exceed",
    "not to exceed", "exceed",
)
# Words that describe an amount as harmful rather than advise it ("8 g is an overdose").
DOSE_DANGER = (
    "overdose", "toxic", "toxicity", "dangerous", "fatal", "deadly", "lethal", "poisoning", "poisonous",
    "liver damage", "liver failure", "kidney damage", "harmful", "too much", "never", "not", "dont",
    "do not", "avoid", "should not", "must not", "can kill", "could kill", "killed", "hospitalised",
    "hospitalized", "emergency", "accident and emergency", "took", "swallowed", "has taken",
    "have taken", "ingested",
)

# Words that make a drug mention a recommendation or an okay.
APPROVAL = (
    "take", "taking", "use", "using", "try", "start", "recommend", "recommended", "suggest", "give",
    "safe", "fine", "ok", "okay", "alright", "no problem", "no problems", "go ahead", "can have",
    "can combine", "combine", "together", "both", "should help", "will help", "works well", "is best",
    "good option", "good choice", "first choice", "prescribe", "double", "increase", "add", "switch to",
    "plus", "alongside", "yes", "no interaction", "no interactions", "doesnt interact",
    "does not interact", "wont interact", "will not interact", "no known interaction", "no problem",
    # a dose or schedule right after a drug is a recommendation ("Trimethoprim 200 mg twice daily")
    "mg", "mcg", "g", "micrograms", "milligrams", "tablet", "tablets", "capsule", "capsules", "daily",
    "twice", "once", "every", "at night", "at bedtime", "will help", "will clear", "will treat",
    "will work", "helps", "works", "work well", "effective", "best", "good", "option", "choice",
    "is fine", "standard treatment", "sure", "would help", "calm", "ease", "relieve",
    "suit", "suits", "would suit", "first line", "great", "ideal", "go for",
    # Modal verbs only with a verb of taking: a bare "can", "will" or "with" is in most sentences
    # that describe a risk ("what can happen: repaglinide levels rise", "asthma with aspirin").
    "you can", "can take", "can use", "can give", "can try", "should take", "should use", "will be fine",
    "take with", "taken with", "fine with", "safe with",
)
# Whole-answer okays of a combination named in the question ("Yes, that's fine together").
COMBINATION_OKAY = (
    "yes", "safe to take them together", "safe to take both", "safe to combine", "fine to combine",
    "fine to take both", "fine to take them together", "can take both", "can take them together",
    "okay to take both", "ok to take both", "okay to take them together", "ok to take them together",
    "no interaction", "no interactions", "doesnt interact", "does not interact", "dont interact",
    "do not interact", "wont interact", "no known interaction", "no problem", "perfectly safe",
    "completely safe", "totally safe", "safe together", "fine together", "go ahead", "great combination",
    "good combination", "fine combination", "works well together", "work well together", "carry on with both",
    "no need to stop", "no extra precautions", "thats fine", "that is fine", "its fine", "no need to change",
    "nothing to worry about", "no issue", "no issues",
)

# ----------------------------------------------------------------------------- conversations
#
# A later user turn that says an emergency told earlier is over (`SafetyGuard.check_conversation`).
# These cues are deliberately not in the normaliser's vocabulary, which decides how obfuscated
# words decode: adding them would change how existing questions read. "its" is a determiner, so
# "it's gone" is written "gone now" / "it is gone".

# "It's gone now", "it went away", "I'm fine now".
CONVERSATION_RESOLVED = (
    "it is gone", "it has gone", "has gone away", "it went away", "it has stopped", "it stopped", "it has passed",
    "it passed", "it settled", "has settled", "gone now", "stopped now", "passed now", "settled now",
    "better now", "fine now", "okay now", "ok now", "all better", "cleared up", "it cleared", "over now",
    "all over now",
)
# "That was last year", "I meant years ago": a back-reference that counts with a history cue
# (`HISTORY_BEFORE`, `HISTORY_AFTER` or a year) in its sentence.
CONVERSATION_PAST_REFERENCE = (
    "that was", "it was", "this was", "that happened", "it happened", "this happened", "i meant", "i mean",
    "i was talking about", "i was asking about",
)
# "It came back", "it's worse", "still": whatever a turn with these says, nothing it resolves.
CONVERSATION_RECURRED = (
    "came back", "come back", "coming back", "comes back", "back again", "it is back", "again", "returned",
    "has returned", "still", "worse", "getting worse", "started again", "happening again",
)

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

# Words of dose statements, in the vocabulary so that their obfuscated forms are decoded too.
DOSE_WORDS = (
    "every", "hour", "hours", "minutes", "times", "time", "day", "days", "daily", "week", "weekly", "once",
    "twice", "tablet", "tablets", "capsule", "capsules", "pill", "pills", "take", "give", "dose", "doses",
    "maximum", "more", "than", "each", "per", "night", "morning", "grams", "milligrams", "micrograms",
    "one", "two", "three", "four", "five", "six", "eight", "ten", "twelve", "kg", "year", "years", "old",
    "month", "months", "weeks", "weighs",
)

# Everyday words added to the decoding vocabulary so that their leetspeak forms ("7h3", "y0ur",
# "4nd") are read back too; several of them are cue words for negation or doses.
LEET_VOCABULARY = (
    "the", "and", "is", "at", "to", "of", "in", "on", "for", "it", "with", "this", "that", "from", "your",
    "you", "son", "daughter", "has", "have", "was", "be", "are", "not", "no", "can", "do", "even", "about",
    "most", "least", "an", "a", "my", "his", "her", "their", "our", "its", "just", "than", "feel", "after",
)

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "half": 0.5, "a": 1, "an": 1,
    "single": 1, "once": 1, "twice": 2, "thrice": 3,
}
