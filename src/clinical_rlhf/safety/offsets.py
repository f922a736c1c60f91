"""Where each token of a reading was written: the offset map from `NormalisedText.tokens` back to
character offsets of a text (the original as written, or the normalised `text` view).

The normaliser rewrites words on its way to tokens (look-alikes and invisibles, leetspeak, spaced
letters joined and split into words, shorthand and slips respelled, determiners dropped, "a&e"
expanded), so the tokens cannot be searched for in the text. Instead the text is folded one
character at a time, each folded character remembering the character it came from, and cut into
words and break marks the way `normalize._split` cuts it; the tokens are then walked along those
words in order:

- a token equal to the next word, or a leetspeak spelling of it letter for letter ("ch3st"), is
  that word;
- a token spelled by the next words joined ("c h e s t p a i n" -> "chest", "pain") spans them;
- a respelled stretch ("short of breath" for "SOB") spans the words it was written as;
- words no token stands for (determiners, an unreadable stretch) are skipped, looking at most
  `RESYNC_WORDS` words ahead, and tokens with no word of their own ("accident and emergency" for
  "a&e") share the words skipped before the next token that has one.

Every step moves forward, and the look-ahead is bounded, so the map costs time linear in the text's
length. Naive equivalent: an edit-distance alignment of the tokens against the folded words, which
costs their product.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from clinical_rlhf.safety.lexicon import DETERMINERS, HOMOGLYPHS, INVISIBLE, LEET, LEET_ALTERNATIVES
from clinical_rlhf.safety.spelling import Respelling

Span = tuple[int, int]
RESYNC_WORDS = 4
"""Words looked ahead for the next token (determiners and "a&e" skip at most two)."""
_SENTENCE_MARKS = frozenset("!?;\n|")
_CLAUSE_MARKS = frozenset(",:")
_BREAK_WORDS = frozenset({"|", ","})
# A word (letters, digits, @ and $, joined across apostrophes), or a break mark.
_ASCII_PIECE = re.compile(r"[A-Za-z0-9@$]+(?:'+[A-Za-z0-9@$]+)*|[!?;\n|,:]|\.(?=\s|$)")
_ASCII_MARKS = {**dict.fromkeys("!?;\n|.", "|"), ",": ",", ":": ","}
_DROPPED = frozenset({"'", "\u2019", "\u2018", "\u02bc"}) | INVISIBLE


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    """One character as the normaliser folds it (NFKC, case, look-alikes, accents); "" for an
    invisible character or an apostrophe, which the normaliser removes."""
    if char in _DROPPED:
        return ""
    folded = unicodedata.normalize("NFKC", HOMOGLYPHS.get(char, char)).casefold()
    folded = "".join(HOMOGLYPHS.get(c, c) for c in folded)
    if folded.isascii():
        return folded
    return "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "@$"


def written_words(text: str) -> list[tuple[str, int, int]]:
    """(word or break mark, start, end) of `text` folded character by character, offsets into
    `text`: words of letters and digits (apostrophes and invisible characters inside a word
    dropped), "|" for a sentence end ("!?;", a newline, a full stop before a space or the end), ","
    for a comma or colon. ASCII text takes one regular expression (`_ASCII_PIECE`), the same cut."""
    if text.isascii():
        marks = _ASCII_MARKS
        return [(marks.get(piece) or piece.replace("'", ""), match.start(), match.end())
                for match in _ASCII_PIECE.finditer(text.lower()) for piece in (match.group(),)]
    found: list[tuple[str, int, int]] = []
    letters: list[str] = []
    start = end = 0
    size = len(text)
    for position, char in enumerate(text):
        folded = char.lower() if char.isascii() and char != "'" else _fold_char(char)
        if folded and all(_is_word_char(c) for c in folded):
            if not letters:
                start = position
            letters.append(folded)
            end = position + 1
            continue
        if not folded and letters:
            continue  # an invisible character or apostrophe inside a word
        if letters:
            found.append(("".join(letters), start, end))
            letters = []
        if char in _SENTENCE_MARKS or (char == "." and (position + 1 == size or text[position + 1].isspace())):
            found.append(("|", position, position + 1))
        elif char in _CLAUSE_MARKS:
            found.append((",", position, position + 1))
    if letters:
        found.append(("".join(letters), start, end))
    return found


def _spells(word: str, token: str) -> bool:
    """`word` is `token` or a leetspeak spelling of it, letter for letter."""
    if word == token:
        return True
    if len(word) != len(token):
        return False
    return all(w == t or LEET.get(w) == t or LEET_ALTERNATIVES.get(w) == t for w, t in zip(word, token))


def _match(words: Sequence[tuple[str, int, int]], at: int, token: str) -> int:
    """How many words from `at` spell `token`: one word, or several joined ("c h e s t",
    "take 1 0 0 0 0 m g" read as one run); 0 if none. Reads at most `len(token)` words."""
    if _spells(words[at][0], token):
        return 1
    length = count = 0
    while length < len(token) and at + count < len(words):
        word = words[at + count][0]
        if word in _BREAK_WORDS or not _spells(word, token[length:length + len(word)]):
            return 0
        length += len(word)
        count += 1
    return count if length == len(token) and count > 1 else 0


def token_spans(text: str, tokens: Sequence[str], respellings: Sequence[Respelling] = ()) -> tuple[Span, ...]:
    """(start, end) in `text` of each token: where the words it was read from were written. A
    token with no word of its own (an expansion) gets the words skipped before the next matched
    one, or an empty span where the last matched word ends."""
    words = written_words(text)
    spans = None if respellings else one_for_one(words, tokens)
    return spans if spans is not None else aligned_spans(words, tokens, respellings)


def one_for_one(words: Sequence[tuple[str, int, int]], tokens: Sequence[str]) -> tuple[Span, ...] | None:
    """The common case, in one pass: the written words less determiners are the tokens, one for
    one; None when they are not (`aligned_spans` then walks them)."""
    kept = [word for word in words if word[0] not in DETERMINERS]
    if len(kept) == len(tokens) and all(word[0] == token for word, token in zip(kept, tokens)):
        return tuple((start, end) for _, start, end in kept)
    return None


def aligned_spans(words: Sequence[tuple[str, int, int]], tokens: Sequence[str],
                  respellings: Sequence[Respelling] = ()) -> tuple[Span, ...]:
    """The spans of `token_spans` for any tokens, by the forward walk of the module docstring."""
    # Each respelled stretch is matched through the words it was written as: units of
    # (word to find, first token, last token).
    units: list[tuple[str, int, int]] = []
    position = 0
    for first, last, written in respellings:
        units += [(tokens[i], i, i + 1) for i in range(position, first)]
        units += [(word, first, last) for word in written.split()]
        position = max(position, last)
    units += [(tokens[i], i, i + 1) for i in range(position, len(tokens))]

    starts = [-1] * len(tokens)
    ends = [-1] * len(tokens)
    pending: list[tuple[int, int]] = []  # token ranges still waiting for a word
    cursor = 0
    last_end = 0
    size = len(words)
    for word, first, last in units:
        if last == first + 1 and starts[first] < 0 and not pending and cursor < size and words[cursor][0] == word:
            # The common step, taken inline: one token, the next word as written.
            _, starts[first], last_end = words[cursor]
            ends[first] = last_end
            cursor += 1
            continue
        found = 0
        at = cursor
        for at in range(cursor, min(cursor + RESYNC_WORDS + 1, size)):
            found = _match(words, at, word)
            if found:
                break
        if not found:
            pending.append((first, last))
            continue
        skipped = (words[cursor][1], words[at - 1][2]) if at > cursor else (last_end, last_end)
        for low, high in pending:
            _widen(starts, ends, low, high, skipped)
        pending.clear()
        span = (words[at][1], words[at + found - 1][2])
        _widen(starts, ends, first, last, span)
        cursor, last_end = at + found, span[1]
    rest = (words[cursor][1], words[-1][2]) if cursor < len(words) else (last_end, last_end)
    for low, high in pending:
        _widen(starts, ends, low, high, rest)
    return tuple(zip(starts, ends))


def _widen(starts: list[int], ends: list[int], first: int, last: int, span: Span) -> None:
    """Tokens [first, last) cover `span` too (a respelled stretch covers all its written words)."""
    for index in range(first, last):
        if starts[index] < 0:
            starts[index], ends[index] = span
        else:
            ends[index] = max(ends[index], span[1])
