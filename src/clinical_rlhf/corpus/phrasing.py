"""Who is asking and how: the non-clinical variation that makes the corpus read like people.

Nothing here is a clinical fact. It is the wording around the facts (greetings, who the
patient is, how long something has been going on, how the question ends), drawn at random so
that a small language model learns the language of the questions rather than one string.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from clinical_rlhf.knowledge import Drug

# (relation as the asker says it, as the answer says it, sex); "self" is the asker.
_RELATIVES: tuple[tuple[str, str, str], ...] = (
    ("my mum", "your mum", "female"),
    ("my mother", "your mother", "female"),
    ("my dad", "your dad", "male"),
    ("my father", "your father", "male"),
    ("my husband", "your husband", "male"),
    ("my wife", "your wife", "female"),
    ("my partner", "your partner", "female"),
    ("my partner", "your partner", "male"),
    ("my grandmother", "your grandmother", "female"),
    ("my grandad", "your grandad", "male"),
    ("my flatmate", "your flatmate", "male"),
    ("my sister", "your sister", "female"),
    ("my brother", "your brother", "male"),
)
_OLDER_RELATIVES = {"my mum", "my mother", "my dad", "my father", "my grandmother", "my grandad"}

OPENERS: tuple[str, ...] = (
    "", "", "", "Hi,", "Hello,", "Hi there.", "Quick question:", "Sorry to bother you, but",
    "Hello doctor,", "Hey,", "Can you help?", "I hope this is the right place to ask.",
    "Good evening,", "Not sure who else to ask.",
)
WORRY_CLOSERS: tuple[str, ...] = (
    "Should I be worried?", "What should I do?", "Is this something to worry about?",
    "Can I just wait and see?", "Do I need to see someone?", "Is it serious?",
    "What do you think?", "Should I just sleep it off?", "Is that normal?",
    "Any advice?", "What would you suggest?",
)
ADVICE_CLOSERS: tuple[str, ...] = (
    "Any advice?", "What can I do about it?", "What would you suggest?", "How can I manage this?",
    "Is there anything that helps?", "What should I do?", "Any tips?", "Thanks in advance.",
)
SHORT_DURATIONS: tuple[str, ...] = (
    "for the last twenty minutes", "for about half an hour", "since about an hour ago",
    "for the past hour", "since a few minutes ago", "since I woke up", "for about forty minutes",
    "since this morning", "since just after lunch",
)
MEDIUM_DURATIONS: tuple[str, ...] = (
    "since yesterday", "for two days", "for three days", "since the weekend", "for about a day",
    "for four days", "since Monday", "for a couple of days",
)
LONG_DURATIONS: tuple[str, ...] = (
    "for a few weeks", "for about a month", "on and off for months", "for over a year",
    "for two years now", "for a long time", "for several months", "since last winter",
)


@dataclass(frozen=True, slots=True)
class Patient:
    """The person the question is about, with the pronoun forms templates need.

    Question-side fields (`subject`, `has`, ...) are how the asker refers to the patient;
    answer-side fields (`you`, `your`, ...) are how the answer does.
    """

    is_self: bool
    age_years: float
    sex: str
    subject: str
    """"I", "my mum", "my 6-year-old son"."""
    answer_name: str
    """"you", "your mum", "your son"."""
    intros: tuple[str, ...] = ()
    """Sentences giving age and sex the way people do; one is drawn per prompt (may be "")."""
    stage: str = "adult"
    """"adult", "child" or "infant"."""

    @property
    def pronoun(self) -> str:
        return "I" if self.is_self else ("she" if self.sex == "female" else "he")

    @property
    def has(self) -> str:
        return "have" if self.is_self else "has"

    @property
    def is_(self) -> str:
        return "am" if self.is_self else "is"

    @property
    def possessive(self) -> str:
        return "my" if self.is_self else ("her" if self.sex == "female" else "his")

    @property
    def you(self) -> str:
        return "you" if self.is_self else ("she" if self.sex == "female" else "he")

    @property
    def you_object(self) -> str:
        return "you" if self.is_self else ("her" if self.sex == "female" else "him")

    @property
    def your(self) -> str:
        return "your" if self.is_self else ("her" if self.sex == "female" else "his")

    @property
    def you_are(self) -> str:
        return "you are" if self.is_self else ("she is" if self.sex == "female" else "he is")

    @property
    def you_have(self) -> str:
        return "you have" if self.is_self else ("she has" if self.sex == "female" else "he has")

    def introduction(self, rng: random.Random) -> str:
        return rng.choice(self.intros) if self.intros else ""

    def fields(self) -> dict[str, str]:
        """Placeholders for `str.format` in templates."""
        return {
            "subj": self.subject, "has": self.has, "is": self.is_, "pron": self.pronoun,
            "poss": self.possessive, "you": self.you, "you_obj": self.you_object,
            "your": self.your, "you_are": self.you_are, "you_have": self.you_have,
            "patient": self.answer_name,
        }


def draw_patient(rng: random.Random, self_share: float = 0.65) -> Patient:
    """An adult patient: usually the asker, sometimes a relative they are asking for."""
    if rng.random() < self_share:
        sex = rng.choice(("female", "male"))
        age = rng.randint(18, 82)
        noun, letter = ("woman", "F") if sex == "female" else ("man", "M")
        intros = (f"I'm a {age}-year-old {noun}.", f"I am {age} ({sex}).", f"{age}{letter} here.",
                  f"I'm {age}.", f"For context, I'm {age}.", "")
        return Patient(True, age, sex, "I", "you", intros)
    subject, answer_name, sex = rng.choice(_RELATIVES)
    low, high = (55, 92) if subject in _OLDER_RELATIVES else (20, 75)
    age = rng.randint(low, high)
    # Never empty: the answer says "she"/"he", so the question must name who it is about.
    intros = (f"{capitalize(subject)} is {age}.", f"{capitalize(subject)} is {age} years old.",
              f"I'm asking for {subject}, who is {age}.")
    return Patient(False, age, sex, subject, answer_name, intros)


def draw_child(rng: random.Random) -> Patient:
    """A child of 2 to 11 years, asked about by a parent."""
    age = rng.randint(2, 11)
    sex = rng.choice(("female", "male"))
    kin = "daughter" if sex == "female" else "son"
    subject = rng.choice((f"my {kin}", f"my {age}-year-old", f"my {age}-year-old {kin}", "my little one"))
    if subject.startswith(f"my {age}"):
        intros: tuple[str, ...] = ("",)
    else:
        intros = (f"{capitalize(subject)} is {age}.", f"{capitalize(subject)} is {age} years old.",
                  f"I have a {age}-year-old {kin}.")
    return Patient(False, age, sex, subject, f"your {kin}", intros, stage="child")


def draw_infant(rng: random.Random) -> Patient:
    """A baby of 1 to 11 weeks, asked about by a parent."""
    weeks = rng.randint(1, 11)
    sex = rng.choice(("female", "male"))
    subject = rng.choice(("my baby", f"my {weeks}-week-old", "my baby " + ("girl" if sex == "female" else "boy")))
    unit = "week" if weeks == 1 else "weeks"
    intros = (f"{capitalize(subject)} is {weeks} {unit} old.", f"{capitalize(subject)} is only {weeks} {unit} old.")
    if subject.startswith(f"my {weeks}"):
        intros = ("",)
    return Patient(False, weeks / 52, sex, subject, "your baby", intros, stage="infant")


def child_weight_kg(rng: random.Random, age_years: float) -> int:
    """A body weight the parent reports, kept plausible for the age (patient detail, not a limit)."""
    return max(10, int(2 * age_years + 8 + rng.randint(-2, 3)))


def capitalize(text: str) -> str:
    """Upper-case the first letter only (`str.capitalize` would lower-case drug brand names)."""
    return text[:1].upper() + text[1:] if text else text


def join_sentences(*parts: str) -> str:
    """Join non-empty parts with single spaces and tidy spacing.

    A part starts with a capital when it starts a sentence (first, or after `.?!:`); after an
    opener such as "Sorry to bother you, but" it continues the sentence in lower case.
    """
    pieces: list[str] = []
    for part in parts:
        part = part.strip() if part else ""
        if not part:
            continue
        starts_sentence = not pieces or pieces[-1][-1] in ".?!:"
        pieces.append(capitalize(part) if starts_sentence else _lower_first(part))
    text = re.sub(r"\s+", " ", " ".join(pieces))
    return re.sub(r"\s+([,.?!])", r"\1", text)


def _lower_first(text: str) -> str:
    # "My mum ..." after "but" reads "my mum ..."; "I", acronyms and brand names stay as they are.
    first = text.split(" ", 1)[0]
    if first in _KEEP_CAPITAL or not first[:1].isupper() or not first[1:].islower():
        return text
    return text[0].lower() + text[1:]


_KEEP_CAPITAL = frozenset({"I", "I'm", "I've", "I'd", "I'll"})


def tidy_opener(text: str) -> str:
    """"Hi, My mum ..." -> "Hi, my mum ...": an opener ending in a comma runs into the sentence."""
    for opener in OPENERS:
        if opener.endswith((",", "but")) and text.startswith(opener + " "):
            rest = text[len(opener) + 1:]
            return f"{opener} {rest if rest.split(' ', 1)[0] in _KEEP_CAPITAL else _lower_first(rest)}"
    return text


def render(rng: random.Random, templates: tuple[str, ...], **fields: str) -> str:
    """Pick one template and fill it; unknown placeholders fail loudly in tests, not silently."""
    return rng.choice(templates).format(**fields)


def drug_name(rng: random.Random, drug: Drug) -> str:
    """How a patient names the drug: usually the generic name, often a brand, sometimes a synonym."""
    roll = rng.random()
    if drug.brands and roll < 0.3:
        return rng.choice(drug.brands)
    if drug.synonyms and roll > 0.85:
        return rng.choice(drug.synonyms)
    return drug.name


def mg(amount: float) -> str:
    """An amount in mg as people write it: 4000, 7.5, 0.6 (no trailing .0, no thousands comma)."""
    return f"{amount:.2f}".rstrip("0").rstrip(".")
