"""Coherence objective: fluency and relevance of an answer, independent of its clinical content.

    coherence = length * repetition * truncation * (RELEVANCE_FLOOR + (1 - RELEVANCE_FLOOR) * relevance)

- length: empty answers score 0, very short ones a little less, answers over `max_words` fall off
  as max_words / words;
- repetition: distinct word-trigram ratio (degenerate loops repeat trigrams), the longest run of
  one repeated word, and the share of sentences that repeat an earlier one;
- truncation: an answer that stops without final punctuation, worse when it stops on a word that
  cannot end a sentence ("and", "the");
- relevance: content words shared with the prompt (crude stems) or with the matched guideline's
  vocabulary, or the guideline's advice being present (an answer "Call 999 now." to "my chest
  hurts" shares no word but is on topic); see `relevance`.

Optionally the reference model's mean per-token log-probability of the answer (fluency under
the reference model) is blended in: ``(1 - b) * coherence + b * clip((lp - LOGP_FLOOR) / -LOGP_FLOOR)``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Sequence

from clinical_rlhf.knowledge import KnowledgeBase
from clinical_rlhf.knowledge.guidelines import Guideline, normalize_text
from clinical_rlhf.reward.lexicon import DANGLING, DISCLAIMER_RE, GENERIC_CARE_WORDS, STOPWORDS
from clinical_rlhf.reward.text import Analysed, words

SHORT_WORDS = 8
"""Answers shorter than this many words lose up to 40% of the length factor."""
RELEVANCE_FLOOR = 0.25
"""Coherence multiplier of an answer sharing nothing with the prompt (off-topic)."""
TRUNCATED = 0.6
"""Coherence multiplier of an answer that stops without final punctuation."""
TRUNCATED_DANGLING = 0.4
"""... and that stops on a word no sentence ends with ("and", "the") or on a comma."""
ONE_SHARED_RELEVANCE = 0.8
"""Relevance of an answer sharing one content stem with a prompt that has several."""
GENERIC_RELEVANCE = 0.6
"""Relevance of an answer of generic care words only: on no topic, but not another topic."""
REFUSAL_WORDS = 25
"""An answer shorter than this that disclaims ("I can't give medical advice") is a refusal."""
REFUSAL_RELEVANCE = 0.45
"""Relevance of a refusal: below GENERIC_RELEVANCE, since generic health content still says
something about health and a refusal says nothing about the question."""
LOGP_FLOOR = -8.0
"""Mean token log-probability (nats) mapped to 0 fluency; 0 nats maps to 1."""
_SUFFIX = re.compile(r"(?:ing|ed|es|s|ly|ness|al)$")
_END_OK = frozenset('.!?)"\'')


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude stem good enough for topical overlap ("coughing" ~ "cough", "infections" ~ "infect")."""
    return _SUFFIX.sub("", word)[:6] if len(word) > 4 else word


def content_stems(tokens: Iterable[str]) -> set[str]:
    return {stem(t) for t in tokens if t not in STOPWORDS and len(t) > 2 and not t.isdigit()}


def medical_vocabulary(guidelines: Iterable[Guideline], kb: KnowledgeBase) -> frozenset[str]:
    """Content stems of the presentations and triggers of every guideline and of the knowledge
    base's drug names, red flags and contraindicated conditions: the words of answers about
    health. Advice wordings are left out: they are everyday words ("water", "usually")."""
    texts = [*(t for drug in kb.drugs for t in drug.terms),
             *(t for flag in kb.red_flags for t in (flag.name, *flag.triggers)),
             *(t for rule in kb.contraindications for t in (rule.condition, *rule.condition_terms)),
             *(t for g in guidelines for t in (g.presentation, *g.triggers))]
    return frozenset(content_stems(words(normalize_text(" ".join(texts)).replace("*", "").replace(" + ", " "))))


def topic_vocabulary(guidelines: Iterable[Guideline]) -> frozenset[str]:
    """Content stems of the guidelines' presentations, triggers and advice wordings (forbidden
    advice included: wrong advice on the topic is still on the topic)."""
    texts = [g.presentation for g in guidelines]
    texts += [p for g in guidelines
              for p in (*g.triggers, *(w for a in (*g.must_advise, *g.must_not) for w in a.phrases))]
    return frozenset(content_stems(words(normalize_text(" ".join(texts)).replace("*", "").replace(" + ", " "))))


def length_factor(n_words: int, max_words: int) -> float:
    if n_words == 0:
        return 0.0
    if n_words < SHORT_WORDS:
        return 0.6 + 0.4 * n_words / SHORT_WORDS
    return 1.0 if n_words <= max_words else max(0.2, max_words / n_words)


def repetition_factor(response: Analysed) -> float:
    """Distinct-trigram ratio mapped linearly from 0.3 (0) to 0.85 (1); each word of a run of one
    word repeated three or more times halves it; repeated sentences take their share off."""
    tokens = response.words
    factor = 1.0
    if len(tokens) >= 5:
        trigrams = list(zip(tokens, tokens[1:], tokens[2:]))
        distinct = len(set(trigrams)) / len(trigrams)
        factor *= min(1.0, max(0.0, (distinct - 0.3) / 0.55))
    longest = max((sum(1 for _ in run) for _, run in itertools.groupby(tokens)), default=1)
    if longest >= 3:
        factor *= 0.5 ** (longest - 1)
    sentences = [response.normalized[s:e].strip() for s, e in response.sentences]
    if len(sentences) > 1:
        factor *= 1.0 - (len(sentences) - len(set(sentences))) / len(sentences)
    return factor


def truncation_factor(response: Analysed) -> float:
    text = response.raw.rstrip()
    if not text or text[-1] in _END_OK:
        return 1.0
    last = response.words[-1] if response.words else ""
    return TRUNCATED_DANGLING if text[-1] in ",:;-" or last in DANGLING else TRUNCATED


def relevance(prompt: Analysed, response: Analysed, on_topic_hint: bool,
              topic_stems: frozenset[str] = frozenset(), medical_stems: frozenset[str] = frozenset()) -> float:
    """How clearly the answer addresses the prompt, in [0, 1]:

    1 when it follows the matched guideline (`on_topic_hint`) or shares two content stems with
    the prompt or the matched guideline's vocabulary (`topic_stems`: "hypertension" answers
    "blood pressure"), or all the prompt has; ONE_SHARED_RELEVANCE for one shared stem;
    GENERIC_RELEVANCE for an answer about health but not about this prompt (generic care words,
    or words of the knowledge base, `medical_stems`); at most REFUSAL_RELEVANCE for a short
    refusal ("I can't give medical advice"), which does not address the question; 0 for an answer whose content words
    are all foreign to medicine and to the prompt (off-topic)."""
    if on_topic_hint:
        return 1.0
    asked = content_stems(prompt.words)
    if not asked:
        return 1.0
    said = content_stems(response.words)
    shared = len(said & (asked | topic_stems))
    if shared >= min(2, len(asked)):
        score = 1.0
    elif shared:
        score = ONE_SHARED_RELEVANCE
    elif not said or said & medical_stems or any(word in GENERIC_CARE_WORDS for word in response.words):
        score = GENERIC_RELEVANCE
    else:
        return 0.0
    if len(response.words) < REFUSAL_WORDS and response.has(DISCLAIMER_RE):
        score = min(score, REFUSAL_RELEVANCE)
    return score


def score_coherence(prompt: Analysed, response: Analysed, *, max_words: int, on_topic_hint: bool = False,
                    topic_stems: frozenset[str] = frozenset(), medical_stems: frozenset[str] = frozenset(),
                    ref_logprob: float | None = None, ref_weight: float = 0.0) -> float:
    """Coherence in [0, 1] of one answer."""
    score = (length_factor(len(response.words), max_words) * repetition_factor(response)
             * truncation_factor(response)
             * (RELEVANCE_FLOOR
                + (1.0 - RELEVANCE_FLOOR) * relevance(prompt, response, on_topic_hint, topic_stems, medical_stems)))
    if ref_logprob is not None and ref_weight > 0.0:
        fluency = min(1.0, max(0.0, (ref_logprob - LOGP_FLOOR) / -LOGP_FLOOR))
        score = (1.0 - ref_weight) * score + ref_weight * fluency
    return score


def score_coherence_batch(prompts: Sequence[Analysed], responses: Sequence[Analysed], *, max_words: int,
                          on_topic_hints: Sequence[bool] | None = None,
                          topic_stems: Sequence[frozenset[str]] | None = None,
                          medical_stems: frozenset[str] = frozenset(),
                          ref_logprobs: Sequence[float] | None = None, ref_weight: float = 0.0) -> list[float]:
    n = len(prompts)
    hints = on_topic_hints if on_topic_hints is not None else [False] * n
    topics = topic_stems if topic_stems is not None else [frozenset()] * n
    logps = ref_logprobs if ref_logprobs is not None else [None] * n
    return [score_coherence(p, r, max_words=max_words, on_topic_hint=h, topic_stems=t,
                            medical_stems=medical_stems, ref_logprob=lp, ref_weight=ref_weight)
            for p, r, h, t, lp in zip(prompts, responses, hints, topics, logps)]
