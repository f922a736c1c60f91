"""Where an answer names drugs and doses, read against the knowledge base.

`DrugIndex` compiles every generic name, synonym and brand of the knowledge base into one
pattern once; `mentions` lists the drugs a text names (for texts the guard did not read: sampled
answers); `reading_mentions` places the drugs of the guard's reading of an answer
(`safety/reading.py`, one drug reading for the guard and the reward's checks) in its normalised
form; `stated_doses` the amounts it states for them, read by the guard's own dose parser (one
parser in the project).
Also the shape test for invented drug names: USAN/INN stems (USAN Council, "Stems" list;
WHO INN "The use of stems in the selection of INN", 2018) that nearly only drug names end with.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from clinical_rlhf.knowledge import Drug, KnowledgeBase, normalise_term
from clinical_rlhf.knowledge.guidelines import normalize_text, phrase_regex
from clinical_rlhf.knowledge.language import load_language
from clinical_rlhf.safety.dosage import DoseStatement, find_doses
from clinical_rlhf.safety.reading import TextReading

# Name endings (INN/USAN stems) that mark a word as a drug name, and ordinary words that happen to
# end like one (data/knowledge/language.yaml).
DRUG_STEMS = tuple(load_language().phrases("drug_name_stems"))
NOT_DRUGS = load_language().words("not_drugs")
_LONG_WORD = re.compile(r"\b[a-z]{6,}\b")
_WHITESPACE = re.compile(r"\s+")

# Stand-in drug that lets the guard's dose parser report every amount in a text, named or not
# (to find the word written just before an amount: "Painaway 500 mg").
_ANY_DRUG = Drug(name="?", synonyms=(), brands=(), classes=(), max_daily_mg=None, max_single_mg=None,
                 pediatric_max_mg_per_kg_day=None, usual_adult_dose="", common_strengths_mg=(), source="")


@dataclass(frozen=True, slots=True)
class Mention:
    drug: Drug
    span: tuple[int, int]
    """Offsets in the normalised text."""


def _dehyphen(text: str) -> str:
    """Hyphens as spaces, same length ("co-amoxiclav" and "co amoxiclav" meet, offsets kept)."""
    return text.replace("-", " ")


class DrugIndex:
    """Drug lookups over one knowledge base, compiled once."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        terms = {_dehyphen(normalize_text(t)) for drug in kb.drugs for t in drug.terms}
        self._pattern = re.compile(phrase_regex(terms))
        self._known_words = {w for t in terms for w in re.findall(r"[a-z]+", t)}

    def drug(self, name: str) -> Drug | None:
        return self.kb.drug(name)

    def mentions(self, normalized: str) -> list[Mention]:
        """Every drug named in already-normalised text, in order."""
        found = []
        for match in self._pattern.finditer(_dehyphen(normalized)):
            drug = self.kb.drug(normalise_term(match.group(0)))
            if drug is not None:
                found.append(Mention(drug, match.span()))
        return found

    def unknown_drug_like(self, normalized: str) -> list[tuple[str, tuple[int, int]]]:
        """Words shaped like drug names (an INN/USAN stem ending) that the knowledge base lacks."""
        hits = []
        for match in _LONG_WORD.finditer(normalized):
            word = match.group(0)
            if word.endswith(DRUG_STEMS) and word not in NOT_DRUGS and word not in self._known_words:
                hits.append((word, match.span()))
        return hits

    def is_known_word(self, word: str) -> bool:
        return word in self._known_words


def reading_mentions(reading: TextReading, normalized: str) -> list[Mention]:
    """The drugs of the guard's reading of a text (`TextReading.drugs`, token positions), each at
    the offsets of `normalized` (`normalize_text` of the same text) where it was written.

    Naive equivalent: the reading's offset map (`TextReading.span`) gives each mention's original
    offsets and `_normalised_offset` moves them past the whitespace that normalising collapses.
    Faster for the common case: a mention whose words stand as a whole word in `normalized` after
    the previous one is found there by `str.find`; the first that does not (a name behind
    leetspeak or look-alikes, "st johns wort") switches the rest to the map. The search only moves
    forward and gives up at most once, so the cost stays linear in the text's length."""
    if not reading.drugs:
        return []
    found: list[Mention] = []
    cursor = 0
    to_normalised = None
    for mention in reading.drugs:
        if to_normalised is None:
            at = _whole_word(normalized, mention.evidence, cursor)
            if at >= 0:
                cursor = at + len(mention.evidence)
                found.append(Mention(mention.drug, (at, cursor)))
                continue
            to_normalised = _normalised_offset(reading.original, len(normalized))
        span = reading.span(mention.start, mention.end)
        if span is not None:
            found.append(Mention(mention.drug, (to_normalised(span[0]), to_normalised(span[1]))))
    return found


def _whole_word(text: str, words: str, start: int) -> int:
    """Where `words` first stand in `text` at or after `start` with no letter or digit either
    side ("ibuprofen", not the end of "dexibuprofen"); -1 when nowhere."""
    at = text.find(words, start)
    while at >= 0:
        end = at + len(words)
        if (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
            return at
        at = text.find(words, at + 1)
    return -1


def _normalised_offset(original: str, size: int) -> Callable[[int], int]:
    """Offset in `original` -> offset in `normalize_text(original)` (of length `size`), which
    lower-cases, maps quotes one for one and turns each run of whitespace into one space, less
    the runs at either end. Naive equivalent: count the characters normalising keeps before the
    offset."""
    runs = [match.span() for match in _WHITESPACE.finditer(original)]
    ends = [end for _, end in runs]
    removed = [0]
    for start, end in runs:
        removed.append(removed[-1] + (end - start if start == 0 else end - start - 1))

    def offset(position: int) -> int:
        index = bisect_right(ends, position)
        inside = index < len(runs) and runs[index][0] < position
        moved = runs[index][0] + (0 if runs[index][0] == 0 else 1) - removed[index] if inside \
            else position - removed[index]
        return min(max(moved, 0), size)

    return offset


def stated_doses(normalized: str, mentions: list[Mention]) -> list[DoseStatement]:
    """The amounts an answer states for the drugs it names, parsed by the guard's dose parser
    (`clinical_rlhf.safety.dosage.find_doses`: counts x strengths, ranges, frequencies)."""
    drugs = list({m.drug.name: m.drug for m in mentions}.values())
    return find_doses(normalized, drugs, None) if drugs else []


def amount_spans(normalized: str) -> list[tuple[int, int]]:
    """Where the text states an amount with a mass unit, whatever it is an amount of."""
    return [s.span for s in find_doses(normalized, [], _ANY_DRUG)
            if s.per_dose_mg is not None or s.per_kg_mg is not None]
