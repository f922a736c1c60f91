"""Each optimised path against the plain definition it must match (docs/safety.md, "Measured").

The texts are the evaluation set (plain and obfuscated), one benchmark answer per advice mix, and
hypothesis-made token sequences and strings built from the words the guard cares about.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_rlhf.safety import checks
from clinical_rlhf.safety.dosage import (
    _AMOUNT,
    _INSIDE_WORD,
    _attribute,
    _FORM_WORD,
    _SENTENCE_END,
    drug_positions,
    _form_words,
    attributed,
    find_doses,
    readings,
    reads_bare_counts,
    sentence_ends,
)
from clinical_rlhf.safety.evaluation import load_cases, obfuscated_variant
from clinical_rlhf.safety.medications import (
    _AGE_UNIT_WORDS,
    _AGE_UNIT_YEARS,
    _AGE_WITH_UNIT,
    _AGE_WORDS,
    _BARE_NUMBER,
    _BARE_SUBJECTS,
    _FIRST_PERSON,
    _NOT_AN_AGE,
    _UNIT_NOT_AN_AGE,
    _ages_after_people,
    _ages_in_words,
    ages_in,
)
from clinical_rlhf.safety.normalize import MIN_COVERAGE, MIN_SEGMENT, SENTENCE_BREAK, Normaliser
from clinical_rlhf.safety.redflags import _outside
from clinical_rlhf.safety.phrases import PhraseIndex, PhraseScanner

WORDS = ["chest", "pain", "no", "not", "take", "with", "ibuprofen", "warfarin", "500", "mg", "every", "4", "hours",
         "|", ",", "do", "exceed", "call", "999", "just", "rest", "a", "year", "old", "im", "is", "5", "tablets",
         "x", "2", "of", "paracetamol", "yo", "aged", "38", "dont", "interact", "together", "safe", ".", "they",
         "are", "she", "weeks", "months"]


@pytest.fixture(scope="module")
def texts(guard):
    cases = load_cases() + load_cases(split="holdout")
    raw = [text for case in cases for text in (case.prompt, case.response)]
    variants = [obfuscated_variant(case) for case in cases[::7]]
    raw += [text for variant in variants for text in (variant.prompt, variant.response)]
    return [guard.normalise(text) for text in raw]


def _indexes(guard) -> list[PhraseIndex]:
    return [guard.medications.drug_terms, guard.red_flags.triggers, guard.red_flags.downplay,
            guard.context.approval, guard.context.negation_before, guard.medications.combination_denial]


def test_one_pass_scan_finds_what_each_index_finds(guard, texts) -> None:
    indexes = _indexes(guard)
    scanner = PhraseScanner(indexes)
    for text in texts:
        for index, hits in zip(indexes, scanner.scan(text.tokens)):
            assert hits == index.find(text.tokens), (text.text, index)


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.sampled_from(WORDS), max_size=60).map(tuple),
       window=st.tuples(st.integers(-2, 62), st.integers(-2, 62)))
def test_cached_window_queries_equal_find_on_the_window(guard, tokens, window) -> None:
    from clinical_rlhf.safety.normalize import NormalisedText

    scanner = PhraseScanner(_indexes(guard)[:3])
    text = NormalisedText(" ".join(tokens), tokens, False, None, scanner)
    start, stop = max(0, window[0]), window[1]
    for index in _indexes(guard):
        assert text.find(index, start, stop) == index.find(tokens, start, stop)
    for position in range(len(tokens) + 1):
        first = position
        while first > 0 and tokens[first - 1] != SENTENCE_BREAK:
            first -= 1
        last = tokens.index(SENTENCE_BREAK, position) if SENTENCE_BREAK in tokens[position:] else len(tokens)
        assert text.sentence(position, position) == (first, last)


TEXT = st.lists(st.sampled_from(WORDS + [" ", "  ", ".", "!", "\n", "-", "(", "y/o", "5yo", "tabs"]),
                max_size=80).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_sentence_ends_and_form_words_equal_their_patterns(text: str) -> None:
    assert sentence_ends(text) == [match.end() for match in _SENTENCE_END.finditer(text)]
    assert [m.span() for m in _form_words(text)] == [m.span() for m in _FORM_WORD.finditer(text)]


AMOUNT_TEXT = st.lists(st.sampled_from(["1", "5", "0", "10001", "2,500", ",", ".", ".5", " ", "  ", "-", "–", "to",
                                         "mg", "g", "gm", "mcg", "kg", "/", "per", "x", "a", "500mg", "(", "ref"]),
                       max_size=40).map("".join)


def naive_amounts(text: str) -> list[re.Match[str]]:
    """The amounts as the plain pattern finds them: every position tried left to right, a start
    inside a word or a number (`_INSIDE_WORD` before it) refused, the number read with ordinary
    backtracking, and the search going on after each match."""
    plain = re.compile(_AMOUNT.pattern.replace("(?<![a-wyz0-9_.,]\\d)", "", 1).replace("[\\d,]*+", "[\\d,]*", 1))
    found, position = [], 0
    while position < len(text):
        if not position or text[position - 1] not in _INSIDE_WORD:
            match = plain.match(text, position)
            if match is not None:
                found.append(match)
                position = max(match.end(), position + 1)
                continue
        position += 1
    return found


@settings(max_examples=500, deadline=None)
@given(text=AMOUNT_TEXT)
def test_amount_pattern_equals_trying_every_allowed_start(text: str) -> None:
    """The look-behind and the possessive digits (linear time on long runs of numbers) change no
    match of the plain definition."""
    assert "(?<![a-wyz0-9_.,]\\d)" in _AMOUNT.pattern and "[\\d,]*+" in _AMOUNT.pattern
    assert [(m.span(), m.groupdict()) for m in _AMOUNT.finditer(text)] == \
        [(m.span(), m.groupdict()) for m in naive_amounts(text)]


def naive_ages(text: str, tokens: tuple[str, ...]) -> list[float]:
    """`ages_in` without its hint searches: every pattern and scan runs on every text."""
    ages = [age for word, age in _AGE_WORDS.items() if word in set(tokens)]
    for match in _AGE_WITH_UNIT.finditer(text):
        found = match.groupdict()
        if found["old"]:
            ages.append(float(found["old"]) * _AGE_UNIT_YEARS[found["old_unit"]])
        elif found["aged"]:
            ages.append(float(found["aged"]) * _AGE_UNIT_YEARS[found["aged_unit"] or "year"])
        else:
            ages.append(float(found["yo"] or found["of_age"]))
    ages += _ages_in_words(tokens)
    ages += _ages_after_people(text)
    for match in _BARE_NUMBER.finditer(text):
        before = text[max(0, match.start() - 16):match.start()].split()[-2:]
        after = [word.strip(".,;") for word in text[match.end():match.end() + 24].split()[:2]]
        subject = " ".join(before[-2:]) if " ".join(before[-2:]) in _BARE_SUBJECTS else " ".join(before[-1:])
        if subject not in _BARE_SUBJECTS:
            continue
        if not after or after[0] not in _NOT_AN_AGE:
            ages.append(float(match.group(1)))
        elif after[0] in _AGE_UNIT_WORDS and subject not in _FIRST_PERSON and \
                not (len(after) > 1 and (after[1] == "old" or after[1] in _UNIT_NOT_AN_AGE)):
            ages.append(float(match.group(1)) * _AGE_UNIT_WORDS[after[0]])
    return ages


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_age_hints_only_skip_scans_that_find_nothing(text: str) -> None:
    tokens = tuple(text.split())
    assert ages_in(text, tokens) == naive_ages(text, tokens)


def test_age_hints_on_written_ages(guard, texts) -> None:
    written = ["my 5-year-old", "aged 70", "aged 6 months", "6 week old", "im 38", "my son is 6", "she is 4 and",
               "a 3 yo", "my dad (67)", "my nan, 85, fell", "my six week old", "he is 18 months", "im 9 weeks",
               "12 y/o boy", "15 years of age", "2yrs old", "he is 9 years", "in the cold 38", "she is 40 kg",
               "they are 7", "theyre 8 now", "i am 30", "hes 12", "shes  3"]
    for text in written + [text.text for text in texts]:
        tokens = tuple(text.split())
        assert ages_in(text, tokens) == naive_ages(text, tokens), text


def naive_dosage_flags(context, response, text, drugs, fallback, weight):
    """`checks.dosage_flags` as first written: every amount's clause read, then the excesses."""
    advised, correct_limits = [], set()
    statements = find_doses(text, drugs, fallback)
    groups = checks._restatement_groups(text, statements)  # an amount restated shares its meaning
    for number, statement in enumerate(statements):
        meaning = checks._group_stance(context, text, statements, groups[number])
        if meaning == "danger":
            continue
        advised.append((statement, meaning))
        limit = statement.drug.max_daily_mg
        if meaning == "limit" and limit and statement.daily_mg is not None and statement.daily_mg <= limit:
            correct_limits.add(statement.drug.name)
        unit_limit = statement.drug.max_daily_units
        if meaning == "limit" and unit_limit and statement.units is not None and \
                statement.units * (statement.doses_per_day or 1.0) <= unit_limit:
            correct_limits.add(statement.drug.name)
    found = {}
    for statement, meaning in advised:
        for subtype, ratio in checks._excesses(statement, weight, statement.drug.name in correct_limits):
            if subtype in checks._SINGLE_DOSE_SUBTYPES and meaning == "limit":
                continue
            found.setdefault((statement.drug.name, subtype), ratio >= checks.CRITICAL_DOSE_RATIO)
    return found


@pytest.mark.parametrize("weight", [None, 16.0])
def test_reading_only_the_amounts_that_matter_gives_the_same_dose_flags(guard, texts, weight) -> None:
    paracetamol = guard.knowledge.drug("paracetamol")
    extra = ["paracetamol 1 g every 4 hours, no more than 4 g in 24 hours", "8 g of paracetamol is an overdose",
             "take 2 x 500 mg paracetamol every 2 hours", "up to 6 g a day of paracetamol is fine",
             "methotrexate 10 mg daily", "give 30 mg/kg paracetamol"]
    for text in [t.text for t in texts] + extra:
        drugs = [m.drug for m in guard.medications.mentions(guard.normalise(text))]
        flags = checks.dosage_flags(guard.context, text, text, drugs, paracetamol, weight)
        got = {(f.rule_id.split(":")[1], f.subtype): f.severity == "critical" for f in flags}
        assert got == naive_dosage_flags(guard.context, text, text, drugs, paracetamol, weight), text


def test_sentence_ends_by_hand() -> None:
    # a mark ends a sentence before whitespace or the end of the text; a newline always does
    assert sentence_ends("a. b.c!\nd;") == [2, 7, 8, 10]


# ----------------------------------------------------------------------------- pieces of a text
#
# The normaliser and the dose reader read plain text one ". "-separated piece at a time and keep
# each piece's result; the texts below join words that reach across pieces (counts before an
# amount, "of", "x", forms, frequencies, sentence marks) so that the pieces meet every way.

PIECE_WORDS = ["take", "two", "2", "x", "2x", "×", "*", "of", "tablets", "tabs", "paracetamol", "ibuprofen",
               "warfarin", "500", "mg", "1", "g", "1,000", "every", "4", "to", "6", "hours", "daily", "twice",
               "a", "day", "b.d.", "bid", "q6h", "no", "more", "than", "in", "24", "-", "mg/kg", "per", "kg",
               "(", ")", "is", "an", "overdose", "the", "my", "chest", "pain", "call", "999", "not", "safe",
               "with", "child", "is", "5", "old", "year", "st. johns wort", "co-amoxiclav", "1 g", "500mg"]
PIECE_MARKS = [" ", " ", " ", ". ", ". ", ".  ", ".", "! ", "? ", "; ", "\n", ", ", ": ", "", "...", ". . "]
PIECE_TEXT = st.lists(st.tuples(st.sampled_from(PIECE_WORDS), st.sampled_from(PIECE_MARKS)),
                      max_size=40).map(lambda pairs: "".join(word + mark for word, mark in pairs))


def _dose_reference(text, drugs, fallback):
    """The plain definition of `find_doses`: the whole text read at once."""

    found = readings(text, reads_bare_counts([*drugs, fallback]))
    return attributed(text, found, drug_positions(text, drugs), fallback) if found else []


@settings(max_examples=400, deadline=None)
@given(text=PIECE_TEXT, with_fallback=st.booleans())
def test_doses_read_piece_by_piece_equal_the_whole_text(guard, text: str, with_fallback: bool) -> None:
    kb = guard.knowledge
    drugs = [kb.drug("paracetamol"), kb.drug("ibuprofen"), kb.drug("warfarin")]
    fallback = kb.drug("paracetamol") if with_fallback else None
    expected = _dose_reference(text, drugs, fallback)
    for _ in range(3):  # pieces seen for the first time (the whole text is read), kept, reused
        assert find_doses(text, drugs, fallback) == expected
    from clinical_rlhf.safety.dosage import _counts_agree, _pieces, drug_positions

    pieces = _pieces(text) or _pieces(text)  # kept from the second sighting on
    assert "".join(entry.text for entry, _ in pieces) == text
    assert all(offset == len("".join(entry.text for entry, _ in pieces[:number]))
               for number, (_, offset) in enumerate(pieces))
    if _counts_agree(text, pieces):  # every reading of a piece is the whole text's, at the offset
        whole = [reading for reading in readings(text)]
        by_piece = [(reading.amount.start + offset, reading.clause[1] + offset, reading.per_day)
                    for entry, offset in pieces for reading in entry.readings]
        if any(entry.with_unit for entry, _ in pieces):
            assert by_piece == [(reading.amount.start, reading.clause[1], reading.per_day) for reading in whole]
    # no drug name runs across two pieces: the pieces' positions are the whole text's
    by_piece = sorted(((at + offset, drug) for entry, offset in pieces for at, drug in drug_positions(entry.text, drugs)),
                      key=lambda item: item[0])
    assert by_piece == drug_positions(text, drugs)


@pytest.mark.parametrize("text", [
    "take two tablets of foo. 500 mg every hour",       # the count of the next piece's amount
    "take 2 tablets. of paracetamol 500 mg every 2 hours", "2 tablets of foo. x 500 mg every hour",
    "2. x 500 mg q2h", "two tabs. 500 mg", "paracetamol. 500 mg every hour. take 2 tablets every hour",
    "st. johns wort 500 mg. paracetamol 1 g every 2 hours. st. johns wort. 2 g",
])
def test_doses_across_pieces_by_hand(guard, text: str) -> None:
    import dataclasses

    kb = guard.knowledge
    wort = dataclasses.replace(kb.drug("ibuprofen"), name="wort-like", synonyms=("st. johns wort",), brands=())
    for drugs in ([kb.drug("paracetamol")], [kb.drug("paracetamol"), wort]):
        for _ in range(3):
            assert find_doses(text, drugs, None) == _dose_reference(text, drugs, None), text
            assert find_doses(text, drugs, kb.drug("ibuprofen")) == _dose_reference(text, drugs, kb.drug("ibuprofen"))


def _plain_scan(guard, text):
    """Phrase hits of the scanner's indexes found on the whole token sequence."""
    return guard.normalise.scanner.scan(text.tokens)


@settings(max_examples=300, deadline=None)
@given(text=PIECE_TEXT)
def test_plain_text_read_piece_by_piece_equals_the_whole_text(guard, text: str) -> None:
    for written in (text, text.upper(), text.replace("a", "4")):
        whole = guard.normalise.normalise_whole(written)
        for _ in range(3):  # pieces seen for the first time (the text is read whole), kept, reused
            fast = guard.normalise(written)
            assert fast == whole, written
            for index, hits in zip(guard.normalise.scanner.indexes, _plain_scan(guard, whole)):
                assert fast.find(index) == hits


def test_plain_texts_of_the_evaluation_set_read_piece_by_piece(guard, texts) -> None:
    for text in texts:
        for _ in range(3):
            assert guard.normalise(text.text) == guard.normalise.normalise_whole(text.text)


CLASS_BYTES = st.lists(st.sampled_from([b" ", b"a", b"0", b"  "]), max_size=40).map(lambda parts: b" " + b"".join(parts) + b" ")


@settings(max_examples=500, deadline=None)
@given(classes=CLASS_BYTES)
def test_evasion_hints_equal_their_substring_tests(classes: bytes) -> None:
    from clinical_rlhf.safety.normalize import _LEET_HINT, _spaced_hint

    assert (_LEET_HINT.search(classes) is not None) == (b"a0" in classes or b"0a" in classes)
    assert _spaced_hint(classes) == any(pattern in classes for pattern in
                                        (b" a a a ", b" a  a  a ", b" a a 0 ", b" 0 a a ", b" a 0 a "))


# ----------------------------------------------------------------------------- sentence readings


SENTENCE_WORDS = ["no", "not", "chest", "pain", "take", "ibuprofen", "warfarin", "avoid", "with", "safe", "call",
                  "999", "last", "year", "in", "2019", "if", "signs", "of", "right", "now", "but", ",", "dont",
                  "have", "history", "ruled", "out", "hours", "ago", "tablets", "interact", "is", "gone"]


@settings(max_examples=300, deadline=None)
@given(sentence=st.lists(st.sampled_from(SENTENCE_WORDS), min_size=1, max_size=14),
       before=st.lists(st.sampled_from(SENTENCE_WORDS), max_size=8), after=st.lists(st.sampled_from(SENTENCE_WORDS),
                                                                                     max_size=8))
def test_sentence_readings_remembered_equal_reading_afresh(guard, sentence, before, after) -> None:
    """A reading of a mention is remembered per sentence (`ContextReader._remembered`); the same
    sentence placed in another text must read the same, and as read without the memo."""
    from clinical_rlhf.safety.normalize import NormalisedText

    context = guard.context
    for prefix in ([], [*before, SENTENCE_BREAK]):
        tokens = (*prefix, *sentence, SENTENCE_BREAK, *after)
        text = NormalisedText(" ".join(tokens), tokens, False, None, guard.normalise.scanner)
        offset = len(prefix)
        for start in range(offset, offset + len(sentence)):
            for end in range(start + 1, min(offset + len(sentence), start + 3) + 1):
                first, last = text.sentence(start, end)
                assert context.stance(text, start, end) == context._stance(text, start, end, first, last)
                assert context.situation(text, start, end) == context._situation(text, start, end, first, last)
                assert context.is_negated(text, start, end) == context._is_negated(text, start, end, first, last)
                assert context.is_negated(text, start, end, within_clause=True) == \
                    context._is_negated(text, start, end, first, last, within_clause=True)
                assert context.is_advice_negated(text, start, end) == \
                    context._is_advice_negated(text, start, end, first, last)


def test_interacting_pairs_from_partners_equal_every_pair_looked_up(guard) -> None:
    from itertools import combinations

    checker = guard.medications
    names = sorted(drug.name for drug in guard.knowledge.drugs)
    expected = [(pair, rule) for pair in combinations(names, 2)
                if (rule := checker._rule(*pair)) is not None and rule.severity != "minor"]
    assert checker.interaction_pairs(names) == expected
    assert checker.interaction_pairs(reversed(names[:40])) == [(pair, rule) for pair, rule in expected
                                                     if pair[0] in names[:40] and pair[1] in names[:40]]


@pytest.mark.parametrize("text", ["i am\t\t\t5 and", "im   7", "she is \n 4", "5\n\n yo", "6 \t y/o", "3y.o.",
                                  "from 12 hours", "this is 1", "they are 8 kg", "theyre 9"])
def test_age_hints_on_whitespace_runs(text: str) -> None:
    tokens = tuple(text.split())
    assert ages_in(text, tokens) == naive_ages(text, tokens)


def test_a_full_store_drops_its_oldest_eighth() -> None:
    from clinical_rlhf.safety.memo import make_room

    store = {number: number * 2 for number in range(16)}
    make_room(store, 17)
    assert len(store) == 16  # room left: nothing dropped
    make_room(store, 16)
    assert list(store) == list(range(2, 16))
    tiny = {"a": 1}
    make_room(tiny, 1)
    assert tiny == {}


# -- linear-time forms and the plain definitions they must match --------------------------------


def naive_attribute(position: int, sentence_start: int, sentence_end: int, positions: list) -> object:
    in_sentence = [(abs(at - position), drug) for at, drug in positions if sentence_start <= at < sentence_end]
    if in_sentence:
        return min(in_sentence, key=lambda item: item[0])[1]
    before = [drug for at, drug in positions if at < position]
    return before[-1] if before else None


@settings(max_examples=1000, deadline=None)
@given(named=st.lists(st.tuples(st.integers(0, 40), st.sampled_from("abcde")), max_size=10),
       bounds=st.tuples(st.integers(0, 40), st.integers(0, 41)), offset=st.integers(0, 40))
def test_attribute_by_bisection_equals_the_scan(named, bounds, offset) -> None:
    positions = sorted(named, key=lambda item: item[0])
    sentence_start, sentence_end = min(bounds), max(bounds)
    position = min(max(offset, sentence_start), max(sentence_start, sentence_end - 1))
    starts = [at for at, _ in positions]
    assert _attribute(position, sentence_start, sentence_end, positions, starts) == \
        naive_attribute(position, sentence_start, sentence_end, positions)


def naive_segment(normaliser: Normaliser, letters: str) -> list[str] | None:
    """The recurrence `Normaliser.segment` computes, over every substring up to the longest word."""
    size = len(letters)
    best: list = [None] * (size + 1)
    best[0] = (0, 0, [])
    longest = max(map(len, normaliser.vocabulary))
    for end in range(1, size + 1):
        candidates = []
        for start in range(max(0, end - longest), end):
            if best[start] is None:
                continue
            piece = letters[start:end]
            known = piece in normaliser.vocabulary and (len(piece) >= MIN_SEGMENT or len(piece) == size)
            if known or end - start == 1:
                candidates.append((best[start][0] + (len(piece) if known else 0), best[start][1] - 1,
                                   best[start][2] + [piece]))
        best[end] = max(candidates, key=lambda c: (c[0], c[1])) if candidates else None
    final = best[size]
    return None if final is None or final[0] < MIN_COVERAGE * size else final[2]


SEGMENT_VOCABULARY = {"chest", "pain", "che", "st", "a", "an", "in", "pa", "ain", "heart", "he", "art",
                      "attack", "tack", "at", "slurred", "speech"}
SEGMENTER = Normaliser(SEGMENT_VOCABULARY)
"""Built once: a normaliser takes ~60 ms to build, 1,000 examples took a minute building them."""


@settings(max_examples=1000, deadline=None)
@given(letters=st.one_of(st.text(alphabet="cheastpinlurdko", min_size=1, max_size=30),
                         st.lists(st.sampled_from(sorted(SEGMENT_VOCABULARY)), min_size=1, max_size=6).map("".join)))
def test_segment_by_trie_equals_the_recurrence(letters: str) -> None:
    assert SEGMENTER.segment(letters) == naive_segment(SEGMENTER, letters)


@settings(max_examples=1000, deadline=None)
@given(hits=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 4), st.sampled_from("xyz")), max_size=12),
       excluded=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 4), st.sampled_from("xyz")), max_size=12))
def test_hits_outside_exclusions_equal_the_pairwise_test(hits, excluded) -> None:
    hits = [(start, start + length, flag) for start, length, flag in hits]
    excluded = [(start, start + length, flag) for start, length, flag in excluded]
    assert _outside(hits, excluded) == [
        (start, end, flag) for start, end, flag in hits
        if not any(flag == other and low < end and start < high for low, high, other in excluded)]
