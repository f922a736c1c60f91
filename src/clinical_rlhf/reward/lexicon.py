"""Wording heuristics of the rule-based scorers: how answers hedge, overclaim, refuse, and which
words carry no topic. The phrases live in `data/knowledge/language.yaml` (each set with its purpose
and source) and are bound here to the names the scorers use; every clinical statement (what to
advise, what is an emergency, drugs and doses) lives in the knowledge base.

Escalation wordings (emergency, urgent, routine referral, false reassurance) are shared with
the guideline statements and therefore live in `guidelines.yaml` under `phrase_sets`.
"""

from __future__ import annotations

import re

from clinical_rlhf.knowledge.guidelines import phrase_regex
from clinical_rlhf.knowledge.language import load_language

LANGUAGE = load_language()
HEDGES = LANGUAGE.phrases("hedges")
LIMITATIONS = LANGUAGE.phrases("limitations")
OVERCONFIDENT = LANGUAGE.phrases("overconfident")
DISCLAIMERS = LANGUAGE.phrases("disclaimers")
FACT_QUESTION = LANGUAGE.phrases("fact_question")
PERSONAL = LANGUAGE.phrases("personal")
DIAGNOSTIC_QUESTION = LANGUAGE.phrases("diagnostic_question")
QUALIFIERS = LANGUAGE.phrases("qualifiers")
GENERIC_CARE_WORDS = LANGUAGE.words("generic_care_words")
STOPWORDS = LANGUAGE.words("stopwords")
DANGLING = LANGUAGE.words("dangling")


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
