"""The clinical knowledge base: drugs, interactions, contraindications and red flags, each fact
with its public source, loaded once and shared by the guard, the reward, the hallucination checks
and the corpus generator (there is no second copy of a fact anywhere in the code).

    from clinical_rlhf.knowledge import load_knowledge
    kb = load_knowledge()                    # shipped data; cached per directory
    kb = load_knowledge(Path("my_kb"))       # files there replace the shipped ones by name

    kb.drugs                 tuple[Drug, ...]  (name, synonyms, brands, classes, max_daily_mg,
                             max_single_mg, pediatric_max_mg_per_kg_day, usual_adult_dose,
                             common_strengths_mg, source, max_weekly_mg,
                             pediatric_max_single_mg_per_kg, max_single_units,
                             max_daily_units, liquids_mg_per_5ml)
    kb.drug("Advil")         -> Drug | None    generic, brand or synonym, any case
    kb.interactions          tuple[Interaction, ...]  (id, a, b, severity, effect, source);
                             a/b are drug names or "class:<name>"
    kb.interaction(a, b)     -> Interaction | None  most severe rule; brands and classes
                             resolved, order-free (`interactions_between` returns all of them)
    kb.contraindications     tuple[Contraindication, ...]  (id, drug, condition, condition_terms,
                             severity, reason, source, min_age_years, max_age_years)
    kb.contraindications_for(drug) -> tuple[Contraindication, ...]
    kb.red_flags             tuple[RedFlag, ...]  (id, name, category, triggers, advice, source,
                             requires_any, near: word co-occurrence rules, NearRule(word_sets, within),
                             exclusions: longer phrases in which a trigger means something else)

Severities are `contraindicated`, `major`, `moderate`, `minor`. A malformed file raises
`ConfigError` naming the file, the entry and the key. The data lives in
`clinical_rlhf/data/knowledge/*.yaml`; this package imports no torch.
"""

from clinical_rlhf.knowledge.loader import load_knowledge, shipped_directory
from clinical_rlhf.knowledge.model import (
    SEVERITY_RANK,
    Contraindication,
    Drug,
    Interaction,
    KnowledgeBase,
    NearRule,
    RedFlag,
    normalise_term,
)

__all__ = [
    "SEVERITY_RANK",
    "Contraindication",
    "Drug",
    "Interaction",
    "KnowledgeBase",
    "NearRule",
    "RedFlag",
    "load_knowledge",
    "normalise_term",
    "shipped_directory",
]
