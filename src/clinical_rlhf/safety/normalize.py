"""Text normalisation that undoes the common ways of hiding words from a filter.

Steps, each applied only when it can change something (plain ASCII text takes a fast path built
on `bytes.translate` and `str.split`, both in C): Unicode NFKC and case folding (full-width and
mathematical letters become plain ones); Cyrillic/Greek look-alikes mapped to Latin; invisible
characters removed; accents stripped; leetspeak inside a word decoded ("ch3st" -> "chest") when
the decoded word is one the guard knows; runs of single letters joined and split back into known
words ("c h e s t p a i n", "c.h.e.s.t" -> "chest pain"). The result keeps two views: `text` (for
numbers and doses, where digits must stay digits) and `tokens` (words for phrase matching,
determiners dropped, `SENTENCE_BREAK` at sentence ends, `CLAUSE_BREAK` for commas). In the tokens,
patient shorthand, sound-alike spellings and one-letter slips are read as the lexicons' words
(`spelling.Respeller`: "SOB" -> "short of breath", "chest pian" -> "chest pain"), and
`NormalisedText.written` gives any stretch of tokens back as the text wrote it, so that evidence
is found in the original text; `NormalisedText.spans` maps each token to the offsets where the
original wrote it, obfuscation included (`offsets.py`).

Plain ASCII text (no sign of leetspeak or spaced letters) is read one ". "-separated piece at a
time, and each piece's tokens and phrase hits are kept from its second sighting on
(`PIECE_CACHE_SIZE`): sampled answers repeat sentences, and the tokens and hits of a text are
those of its pieces joined with a `SENTENCE_BREAK` between them, so a repeated sentence is read
once (`Normaliser.normalise_whole` is the plain definition, tested equal in
`tests/safety/test_fast_paths.py`).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from itertools import chain
from operator import itemgetter

from clinical_rlhf.safety.lexicon import HOMOGLYPHS, INVISIBLE, LEET, LEET_ALTERNATIVES
from clinical_rlhf.safety.memo import make_room
from clinical_rlhf.safety.offsets import Span, token_spans
from clinical_rlhf.safety.phrases import Hit, PhraseIndex, PhraseScanner
from clinical_rlhf.safety.spelling import Respeller, Respelling

SENTENCE_BREAK = "|"
CLAUSE_BREAK = ","
BREAKS = frozenset({SENTENCE_BREAK, CLAUSE_BREAK})
MIN_SPACED_RUN = 3      # single letters in a row before they are read as a spaced-out word
MAX_SPACED_RUN = 120    # longer runs are split, keeping the word segmentation linear
MIN_SEGMENT = 3         # known words shorter than this are not cut out of a run ("plaster" is no "er")
MIN_COVERAGE = 0.6      # share of a run's letters that known words must cover to split it
_LINEAR_FIND = 8  # up to this many hits a filter beats two bisections
_SEEN_ONCE = object()  # a piece seen once: kept from its second sighting on (`Normaliser._plain`)

_hit_start = itemgetter(0)
PIECE_CACHE_SIZE = 8192
"""Sentence pieces whose tokens and phrase hits are kept (~2 kB each, so at most ~16 MB); a full
store drops its oldest eighth (`memo.make_room`)."""

_UNICODE_TABLE = str.maketrans({**HOMOGLYPHS, **{ch: None for ch in INVISIBLE}, "\u2019": None,
                                "\u2018": None, "'": None, "\u02bc": None})


def _ascii_tables() -> tuple[bytes, bytes]:
    """(token table, class table) for bytes.translate: words keep a-z, 0-9, @, $; sentence ends
    become "|", commas and colons ","; everything else a space. The class table maps word
    characters to "a"/"0"."""
    token_table = bytearray(b" " * 256)
    class_table = bytearray(b" " * 256)
    for code in range(256):
        char = chr(code)
        if "a" <= char <= "z":
            token_table[code], class_table[code] = code, ord("a")
        elif "0" <= char <= "9" or char in "@$":
            token_table[code], class_table[code] = code, ord("0")
    for char in "!?;\n" + SENTENCE_BREAK:
        token_table[ord(char)] = ord(SENTENCE_BREAK)
    token_table[ord(",")] = token_table[ord(":")] = ord(CLAUSE_BREAK)
    return bytes(token_table), bytes(class_table)


_TOKEN_TABLE, _CLASS_TABLE = _ascii_tables()
_SPACED_TEXT_RUN = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*/|+~]){2,}[^\W_](?![^\W_])")
_SEPARATORS = re.compile(r"[ .\-_*/|+~]")
_DIGIT_WORD = re.compile(r"\b\d{2,}\b(?=\s+\d)")
_LETTERS_OR_DIGITS = re.compile(r"[^\W\d_]+|\d+")
_MIXED_WORD = re.compile(r"(?<![^\W_])(?=[^\W_]*[a-z])(?=[^\W_]*[0-9@$])[^\W_@$]*[0-9@$][^\W_]*|"
                         r"(?<![^\W_])[a-z]+[@$][a-z@$]*")
_UNICODE_TOKEN = re.compile(r"[^\W_]+|[|,]")
# The evasion hints on the character classes of `_split` (letters "a", digits "0", others " "), as
# one search each instead of seven `in` tests (~1.4 us against ~10 us on a 600-character answer):
# a letter next to a digit (`b"a0" in classes or b"0a" in classes`), and letters spaced one or two
# characters apart. `_SPACED_PREFILTER` is implied by every pattern of `_SPACED_PATTERNS`.
_LEET_HINT = re.compile(rb"0(?:a|(?<=a0))")
_SPACED_PREFILTER = re.compile(rb" [a0]  ?[a0]  ?[a0] ")
_SPACED_PATTERNS = (b" a a a ", b" a  a  a ", b" a a 0 ", b" 0 a a ", b" a 0 a ")
_DOSE_LIKE = re.compile(r"^\d+(?:mg|g|mcg|ug|ml|kg|lb|lbs|h|hr|hrs|x|am|pm|th|st|nd|rd|s|yo|yr|yrs)?$|^q\d+h$")


class NormalisedText:
    """A text as the guard reads it, and what reading it once lets later questions reuse.

    `text` keeps digits for doses; `tokens` are the words phrases are matched on. `find` answers
    "which phrases of this index occur here (in this window)" from one search of the whole text
    per index, kept with the text: the guard asks about the same text many times (a negation cue
    before each symptom, an approval near each drug), and a question's analysis is cached and
    reused for every answer to it. Caches only grow with values computed from the immutable
    fields, so sharing an instance between threads is safe.
    """

    __slots__ = ("text", "tokens", "obfuscated", "original", "_token_set", "_scanner", "_found", "_breaks",
                 "_pieces", "_pieces_hit", "_respellings", "_spans", "_text_spans")

    def __init__(self, text: str, tokens: tuple[str, ...], obfuscated: bool,
                 token_set: frozenset[str] | None = None, scanner: PhraseScanner | None = None,
                 pieces: list[_Piece] | None = None, pieces_hit: int = 0,
                 respellings: tuple[Respelling, ...] | None = (), original: str | None = None) -> None:
        self.text = text
        """Lower-cased, Unicode-folded, look-alikes mapped, invisibles and apostrophes removed."""
        self.tokens = tokens
        """Words for phrase matching (leetspeak decoded, spaced letters joined, determiners dropped)."""
        self.obfuscated = obfuscated
        """True when an evasion step changed the text (look-alikes, invisibles, leetspeak, spacing)."""
        self._token_set = token_set
        self._scanner = scanner
        self._found: dict[PhraseIndex, list[Hit]] = {}
        self._breaks: list[int] | None = None
        self._pieces = pieces
        """The cached pieces the tokens were joined from (`Normaliser._plain`), or None."""
        self._pieces_hit = pieces_hit
        """With `_pieces`: bit n set when some piece has a hit of the scanner's index n."""
        self._respellings = respellings
        """Token stretches written otherwise in the text (None: join the pieces' on first use)."""
        self.original = original if original is not None else text
        """The text as written (`text` itself when the caller did not give it)."""
        self._spans: tuple[Span, ...] | None = None
        self._text_spans: tuple[Span, ...] | None = None

    @property
    def token_set(self) -> frozenset[str]:
        """The distinct tokens (built on first use: the one-pass scan does not need it)."""
        token_set = self._token_set
        if token_set is None:
            token_set = self._token_set = frozenset(self.tokens)
        return token_set

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormalisedText):
            return NotImplemented
        return (self.text, self.tokens, self.obfuscated) == (other.text, other.tokens, other.obfuscated)

    def __hash__(self) -> int:
        return hash((self.text, self.tokens, self.obfuscated))

    def __repr__(self) -> str:
        return f"NormalisedText(text={self.text!r}, tokens={self.tokens!r}, obfuscated={self.obfuscated!r})"

    # -- phrases -----------------------------------------------------------------------------

    def find(self, index: PhraseIndex, start: int = 0, stop: int | None = None) -> list[Hit]:
        """`index.find(self.tokens, start, stop)`: the hits inside [start, stop), from the hits
        of the whole text found once (shared: do not modify the list)."""
        found = self._found.get(index)
        if found is None:
            found = self._find_all(index)
        size = len(self.tokens)
        if start <= 0 and (stop is None or stop >= size):
            return found
        if stop is None or stop > size:
            stop = size
        if len(found) <= _LINEAR_FIND:
            return [hit for hit in found if hit[0] >= start and hit[1] <= stop]
        # Hits are sorted by start and end after their start: the window's are those between the
        # first starting at `start` and the first starting at `stop`, less any ending after `stop`.
        low = bisect_left(found, start, key=_hit_start)
        high = bisect_left(found, stop, low, key=_hit_start)
        return [hit for hit in found[low:high] if hit[1] <= stop]

    def contains(self, index: PhraseIndex, start: int = 0, stop: int | None = None) -> bool:
        """`bool(self.find(index, start, stop))` without building the window's list: in a long
        sentence that list could hold every hit of the text."""
        found = self._found.get(index)
        if found is None:
            found = self._find_all(index)
        if not found:
            return False
        size = len(self.tokens)
        if stop is None or stop > size:
            stop = size
        if start <= 0 and stop >= size:
            return True
        low = bisect_left(found, start, key=_hit_start)
        for position in range(low, len(found)):
            hit = found[position]
            if hit[0] >= stop:
                return False
            if hit[1] <= stop:
                return True
        return False

    def _find_all(self, index: PhraseIndex) -> list[Hit]:
        scanner = self._scanner
        number = scanner.number(index) if scanner is not None else None
        if number is not None:
            if self._pieces is not None:
                hits = _joined_hits(self._pieces, number) if self._pieces_hit >> number & 1 else []
                self._found[index] = hits
                return hits
            for own, hits in zip(scanner.indexes, scanner.scan(self.tokens)):
                self._found[own] = hits
            return self._found[index]
        hits = index.find(self.tokens, token_set=self.token_set)
        self._found[index] = hits
        return hits

    @property
    def respellings(self) -> tuple[Respelling, ...]:
        """Where the tokens read shorthand or a slip as a lexicon word, in token order."""
        respellings = self._respellings
        if respellings is None:
            found: list[Respelling] = []
            offset = 0
            for piece in self._pieces or ():
                found += [Respelling(first + offset, last + offset, written)
                          for first, last, written in piece.respellings]
                offset += len(piece.tokens)
            respellings = self._respellings = tuple(found)
        return respellings

    def written(self, start: int, end: int) -> str:
        """tokens[start:end] joined, each respelled stretch they touch as the text wrote it
        ("short of breath" -> "sob", "chest pain" -> "chest pian")."""
        respellings = self.respellings
        if not respellings:
            return " ".join(self.tokens[start:end])
        words: list[str] = []
        position = start
        # stretches are sorted and disjoint: the first one that can touch [start, end) ends after start
        for first, last, written in respellings[bisect_left(respellings, start + 1, key=itemgetter(1)):]:
            if first >= end:
                break
            words += self.tokens[position:first]
            words.append(written)
            position = max(position, last)
        words += self.tokens[position:end]
        return " ".join(words)

    # -- offsets -----------------------------------------------------------------------------

    @property
    def spans(self) -> tuple[Span, ...]:
        """(start, end) in `original` of each token, breaks included (`offsets.token_spans`), built
        on first use: most checks never need one."""
        spans = self._spans
        if spans is None:
            spans = self._spans = token_spans(self.original, self.tokens, self.respellings)
        return spans

    @property
    def text_spans(self) -> tuple[Span, ...]:
        """`spans` into the normalised `text` view instead (where numbers are read)."""
        spans = self._text_spans
        if spans is None:
            spans = self._text_spans = token_spans(self.text, self.tokens, self.respellings)
        return spans

    def span(self, start: int, end: int) -> Span | None:
        """Offsets in `original` of tokens[start:end] (None for an empty or out-of-range stretch):
        `original[low:high]` is the evidence as written, obfuscation included."""
        if not 0 <= start < end <= len(self.tokens):
            return None
        spans = self.spans
        return spans[start][0], max(spans[position][1] for position in range(start, end))

    # -- sentences ---------------------------------------------------------------------------

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        """[first, last) token positions of the sentence holding tokens[start:end]: after the
        last `SENTENCE_BREAK` before `start`, up to the first one at or after `end`."""
        breaks = self._breaks
        if breaks is None:
            breaks = self._breaks = _positions(self.tokens, SENTENCE_BREAK)
        before = bisect_left(breaks, start)
        first = breaks[before - 1] + 1 if before else 0
        after = bisect_left(breaks, end)
        return first, breaks[after] if after < len(breaks) else len(self.tokens)


class _Piece:
    """A ". "-separated piece of plain text as `Normaliser._plain` keeps it."""

    __slots__ = ("evasive", "hit", "hits", "respellings", "tokens")

    def __init__(self, piece: str, scanner: PhraseScanner | None, respeller: Respeller) -> None:
        words, classes = _split(piece)
        tokens, self.respellings = respeller.read(words)
        self.tokens = (*tokens, SENTENCE_BREAK)
        """Its tokens and a final `SENTENCE_BREAK` (the ". " that `_split` turns into one)."""
        self.evasive = bool(_LEET_HINT.search(classes) or _spaced_hint(classes))
        """It shows a sign of leetspeak or spaced letters: the text must be read whole."""
        scanned = scanner.scan(self.tokens) if scanner is not None and not self.evasive else ()
        self.hits = tuple(tuple(index_hits) for index_hits in scanned)
        """Its hits for each index of the scanner, in the order of `scanner.indexes`."""
        self.hit = sum(1 << number for number, index_hits in enumerate(self.hits) if index_hits)
        """Bit n set when it has a hit of the scanner's index n."""


def _joined_hits(pieces: list[_Piece], number: int) -> list[Hit]:
    """`scanner.scan(tokens)[number]` for tokens joined from cached pieces: each piece's hits,
    found once per piece (for every index of the scanner) and kept with it, moved by the piece's
    offset. No phrase holds a `SENTENCE_BREAK`, so no hit spans two pieces, and pieces come in
    order, so the list stays sorted. Only the indexes asked about are joined, and only when a
    piece has a hit (`_Piece.hit`)."""
    found: list[Hit] = []
    offset = 0
    for piece in pieces:
        own = piece.hits[number]
        if own:
            found += [(start + offset, end + offset, payload) for start, end, payload in own] if offset else own
        offset += len(piece.tokens)
    return found


def _positions(tokens: tuple[str, ...], token: str) -> list[int]:
    """Every position of `token` (`tuple.index` scans in C)."""
    found: list[int] = []
    position = -1
    try:
        while True:
            position = tokens.index(token, position + 1)
            found.append(position)
    except ValueError:
        return found


class Normaliser:
    """Normalises texts against a vocabulary: the words of every phrase the guard looks for.
    The vocabulary decides ambiguous decodings (is "b1eeding" "bieeding" or "bleeding"?)."""

    def __init__(self, vocabulary: set[str], scanner: PhraseScanner | None = None,
                 respeller: Respeller | None = None) -> None:
        self.vocabulary = frozenset(vocabulary)
        self.respeller = respeller if respeller is not None else Respeller(self.vocabulary)
        """Shorthand and slips read as lexicon words (`spelling.py`); its fuzzy matching targets
        `vocabulary`."""
        self._longest_word = max((len(w) for w in vocabulary), default=1)
        self.scanner = scanner
        """Indexes searched together the first time a text is asked about any of them."""
        self._pieces: dict[str, _Piece | object] = {}
        """Piece -> what it holds (`_Piece`), or `_SEEN_ONCE` (`_plain`)."""

    def __call__(self, text: str) -> NormalisedText:
        """`normalise_whole(text)`, faster: plain ASCII text with no sign of leetspeak or spaced
        letters (what the evasion steps would leave alone) is read piece by piece (`_plain`)."""
        lowered = text.lower()
        if lowered.isascii():
            if "'" in lowered:
                lowered = lowered.replace("'", "")
            if "&" in lowered:
                lowered = lowered.replace("a&e", "accident and emergency")
            plain = self._plain(lowered, text)
            if plain is not None:
                return plain
        return self.normalise_whole(text)

    def normalise_whole(self, text: str) -> NormalisedText:
        """The plain definition: every step on the whole text, each when it can change something."""
        lowered = text.lower()
        obfuscated = False
        if not lowered.isascii():
            folded = _fold_unicode(lowered)
            obfuscated = folded != lowered.replace("\u2019", "").replace("\u2018", "").replace("'", "")
            lowered = folded
        elif "'" in lowered:
            lowered = lowered.replace("'", "")
        if "&" in lowered:
            lowered = lowered.replace("a&e", "accident and emergency")
        words, classes = _split(lowered)
        leet_hint = classes is None or _LEET_HINT.search(classes) is not None
        spaced_hint = classes is None or _spaced_hint(classes)
        if leet_hint:
            decoded = [self._decode_leet(word) if not (word.isalpha() or word.isdigit()) else word for word in words]
            if decoded != words:
                obfuscated, words = True, self._decode_digit_words(decoded)
        if spaced_hint:
            joined = self._join_spaced(words)
            if joined is not words:
                obfuscated, words = True, joined
        if obfuscated:
            lowered = self._text_view(lowered)
        tokens, respellings = self.respeller.read(words)
        return NormalisedText(lowered, tokens, obfuscated, None, self.scanner, respellings=respellings,
                              original=text)

    def _plain(self, lowered: str, original: str) -> NormalisedText | None:
        """A plain text from its ". "-separated pieces: `_split(piece)` without determiners, then a
        `SENTENCE_BREAK` (the ". " that `_split` turns into one), for each piece once per
        `PIECE_CACHE_SIZE`; the text's tokens are the pieces' joined, less the last break.

        None (read the text whole) when a piece shows a sign of leetspeak or spaced letters:
        `_split` puts " | " (three spaces in the character classes) between pieces and no evasion
        hint spans three spaces, so the text shows one exactly when one of its pieces does. None
        too when a piece is new: a piece is kept from its second sighting on, so text that never
        repeats a sentence costs one dictionary lookup per piece more than reading it whole."""
        cache = self._pieces
        pieces = []
        hit = 0
        new = False
        for piece in lowered.split(". "):
            entry = cache.get(piece)
            if entry is None:
                make_room(cache, PIECE_CACHE_SIZE)
                cache[piece] = _SEEN_ONCE
                new = True
                continue
            if entry is _SEEN_ONCE:
                entry = cache[piece] = _Piece(piece, self.scanner, self.respeller)
            if entry.evasive:
                return None
            pieces.append(entry)
            hit |= entry.hit
        if new:
            return None
        tokens = tuple(chain.from_iterable([piece.tokens for piece in pieces]))[:-1]
        return NormalisedText(lowered, tokens, False, None, self.scanner, pieces, hit, respellings=None,
                              original=original)

    def phrase_tokens(self, phrase: str) -> tuple[str, ...]:
        """How a knowledge-base phrase reads as tokens (same folding and shorthand as texts, no
        decoding and no correction of slips)."""
        lowered = phrase.lower()
        lowered = _fold_unicode(lowered) if not lowered.isascii() else lowered.replace("'", "")
        words = [word for word in _split(lowered)[0] if word not in BREAKS]
        return self.respeller.read(words, fuzzy=False)[0]

    def _text_view(self, lowered: str) -> str:
        """The number-preserving view of an obfuscated text: letters spaced one separator apart
        joined ("e v e r y  4  h o u r s" -> "every 4 hours"), leetspeak words decoded when the
        decoding is a known word ("3v3ry" -> "every"), digits left alone ("500mg" stays)."""
        joined = _SPACED_TEXT_RUN.sub(self._respell, lowered)
        decoded = _MIXED_WORD.sub(lambda m: self._decode_leet(m.group(0)), joined)
        if decoded != joined:
            decoded = _DIGIT_WORD.sub(lambda m: self._decode_leet(m.group(0), digits_too=True), decoded)
        return decoded

    def _respell(self, match: re.Match[str]) -> str:
        """A spaced run back as words, digits kept apart: "e v e r y 2 h o u r s" -> "every 2 hours"."""
        if sum(ch.isalpha() for ch in match.group(0)) < MIN_SPACED_RUN:
            return match.group(0)  # "1 g a day" is a dose, not a spelled-out word
        pieces = []
        for group in _LETTERS_OR_DIGITS.findall(_SEPARATORS.sub("", match.group(0))):
            words = self.segment(group) if group.isalpha() and len(group) <= MAX_SPACED_RUN else None
            pieces.append(" ".join(words) if words else group)
        return " ".join(pieces)

    # -- leetspeak ---------------------------------------------------------------------------

    def _decode_digit_words(self, words: list[str]) -> list[str]:
        """In text already shown to be leetspeak, a number of two or more digits followed by
        another number is a word ("blood sugar 15 450" is "is 450"); single digits stay numbers,
        since "every 4 hours" must keep its 4."""
        decoded = list(words)
        for index in range(len(words) - 1):
            word = words[index]
            if len(word) >= 2 and word.isdigit() and words[index + 1].isdigit():
                decoded[index] = self._decode_leet(word, digits_too=True)
        return decoded

    def _decode_leet(self, word: str, digits_too: bool = False) -> str:
        if word in BREAKS or (not digits_too and (_DOSE_LIKE.match(word) or not any(ch.isalpha() for ch in word))):
            return word
        primary = "".join(LEET.get(ch, ch) for ch in word)
        if primary in self.vocabulary:
            return primary
        alternative = "".join(LEET_ALTERNATIVES.get(ch, LEET.get(ch, ch)) for ch in word)
        return alternative if alternative in self.vocabulary else word

    # -- spaced letters ----------------------------------------------------------------------

    def _join_spaced(self, words: list[str]) -> list[str]:
        """Runs of single characters become the known words they spell; `words` itself is
        returned when there is no run."""
        out: list[str] = []
        run: list[str] = []
        changed = False
        for word in [*words, ""]:
            if len(word) == 1 and word not in BREAKS:
                run.append(word)
                continue
            if len(run) >= MIN_SPACED_RUN and sum(ch.isalpha() for ch in run) >= MIN_SPACED_RUN:
                out.extend(self._spell(run))
                changed = True
            else:
                out.extend(run)
            run = []
            if word:
                out.append(word)
        return out if changed else words

    def _spell(self, letters: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(letters), MAX_SPACED_RUN):
            chunk = letters[start:start + MAX_SPACED_RUN]
            plain = "".join(LEET.get(ch, ch) for ch in chunk)
            words = self.segment(plain) or self.segment(
                "".join(LEET_ALTERNATIVES.get(ch, LEET.get(ch, ch)) for ch in chunk))
            found.extend(words if words else [plain])
        return found

    def segment(self, letters: str) -> list[str] | None:
        """Split a run of letters into known words, covering as many letters as possible
        (dynamic programming; unknown letters stay one-letter words). None when no known word
        is found at all.

        Forward form of the plain recurrence: `best[end]` is the best of `best[start] + piece` over
        `start` ascending, where `piece = letters[start:end]` is a known word (three letters or
        more, or the whole run) or a single letter, judged by (letters covered, fewer pieces),
        the first best kept. The known words starting at each position come from a walk down
        the vocabulary's letter trie, which stops as soon as no word continues, instead of
        testing every substring up to the longest word's length."""
        size = len(letters)
        best: list[tuple[int, int, int] | None] = [None] * (size + 1)
        best[0] = (0, 0, -1)  # (letters covered, -pieces, where the last piece starts)
        trie, vocabulary = self._trie, self.vocabulary
        for start in range(size):
            prefix = best[start]
            if prefix is None:
                continue
            covered, pieces = prefix[0], prefix[1] - 1
            single_known = letters[start] in vocabulary and (1 >= MIN_SEGMENT or size == 1)
            _relax(best, start + 1, (covered + (1 if single_known else 0), pieces, start))
            node = trie.get(letters[start])
            for end in range(start + 2, size + 1):
                if node is None:
                    break
                node = node.get(letters[end - 1])
                if node is not None and "" in node and (end - start >= MIN_SEGMENT or end - start == size):
                    _relax(best, end, (covered + end - start, pieces, start))
        final = best[size]
        if final is None or final[0] < MIN_COVERAGE * size:
            return None  # mostly unknown letters: keep the run as one word rather than guess
        words = []
        end = size
        while end:
            start = best[end][2]
            words.append(letters[start:end])
            end = start
        return words[::-1]

    @property
    def _trie(self) -> dict:
        """The vocabulary as a letter trie ("" marks a word's end), built on first use."""
        trie = self.__dict__.get("_trie_built")
        if trie is None:
            trie = {}
            for word in self.vocabulary:
                node = trie
                for char in word:
                    node = node.setdefault(char, {})
                node[""] = {}
            self.__dict__["_trie_built"] = trie
        return trie


def _relax(best: list, end: int, candidate: tuple[int, int, int]) -> None:
    """Keep `candidate` for `end` when it covers more letters, or as many in fewer pieces; on a
    tie the first one kept stays (candidates arrive by ascending start, as in the plain form)."""
    current = best[end]
    if current is None or (candidate[0], candidate[1]) > (current[0], current[1]) or \
            ((candidate[0], candidate[1]) == (current[0], current[1]) and candidate[2] < current[2]):
        best[end] = candidate


def _spaced_hint(classes: bytes) -> bool:
    """Letters spaced out: any of `_SPACED_PATTERNS` in the character classes."""
    return _SPACED_PREFILTER.search(classes) is not None and any(pattern in classes for pattern in _SPACED_PATTERNS)


def _split(lowered: str) -> tuple[list[str], bytes | None]:
    """Words and break marks of a lower-cased text, and its character-class bytes (None when
    the text is not ASCII and took the regular-expression path)."""
    if lowered.isascii():
        raw = lowered.replace(". ", " | ").encode("ascii")
        translated = raw.translate(_TOKEN_TABLE)
        if b"|" in translated or b"," in translated:
            translated = translated.replace(b"|", b" | ").replace(b",", b" , ")
        classes = b" " + raw.translate(_CLASS_TABLE) + b" "
        return translated.decode("ascii").split(), classes
    spaced = re.sub(r"[.](?=\s|$)|[!?;\n]", " | ", lowered).replace(":", ",")
    return _UNICODE_TOKEN.findall(spaced), None


def _fold_unicode(text: str) -> str:
    """NFKC, case folding, look-alikes to Latin, invisibles and apostrophes removed, accents off."""
    # Look-alikes are mapped before NFKC and case folding too: both turn some of them into other
    # Greek letters (NFKC makes the lunate sigma "ϲ" a "σ").
    folded = unicodedata.normalize("NFKC", text.translate(_UNICODE_TABLE))
    folded = folded.translate(_UNICODE_TABLE).casefold().translate(_UNICODE_TABLE)
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    # The marks are looked up once per distinct character, then dropped by one `translate`.
    marks = {ord(ch): None for ch in set(decomposed) if unicodedata.combining(ch)}
    return decomposed.translate(marks) if marks else decomposed
