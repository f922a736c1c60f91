"""Seeded generator of unseen clinical question/answer text for the throughput benchmarks.

    python benchmarks/unseen_text.py [--pairs 2000] [--seed 0] [--show 3]   # samples and statistics

A policy sampling from a language model rarely writes the same sentence twice, so a benchmark
built from a few dozen fixed sentences measures the guard's per-sentence memo, not its reading.
Here every sentence is composed fresh from grammar pieces: drugs drawn from the knowledge base
(generic names and brands) with their real classes, doses with units, frequencies and durations,
free numbers (temperatures, blood pressures, percentages, days), conditions from the
contraindication rules, ages and weights, negations, advice, reassurance and safety-netting, and,
now and then, a red-flag phrase from the knowledge base or a dose above the drug's maximum.
Answers are 300 to 1,000 characters long and, like real ones, talk about a few drugs (the
question's and up to two others); each question is answered by several sampled answers, as in
training. The same seed gives the same text; `UnseenText(seed=s)` streams are independent
for different seeds, so a benchmark round that must not see text twice takes a new seed.

Only the knowledge base's public loader is used, so the generator outlives changes to how the
guard reads text. The grammar below is the benchmark's own wording, not clinical data.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable

from clinical_rlhf.knowledge import Drug, KnowledgeBase, load_knowledge

MIN_ANSWER_CHARS = 300
MAX_ANSWER_CHARS = 1000
ANSWERS_PER_QUESTION = 4

SYMPTOMS = ("a headache", "back pain", "a sore throat", "a cough", "earache", "toothache", "heartburn",
            "a blocked nose", "hay fever", "period pain", "a sprained ankle", "trouble sleeping",
            "a rash on my arm", "an upset stomach", "muscle aches", "a stiff neck after gardening")
FREQUENCIES = {"once a day": 1, "twice a day": 2, "three times a day": 3, "every 4 hours": 6, "every 6 hours": 4,
               "every 8 hours": 3, "at night": 1, "in the morning": 1, "once a week": 1 / 7, "every 12 hours": 2}
"""How often, and how many doses that makes in a day."""
FREQUENCY_WORDS = tuple(FREQUENCIES)
DURATIONS = ("day", "week", "month")
UNITS = ("mg", "mg", "mg", "g", "micrograms", "ml")
RELATIVES = ("my son", "my daughter", "my husband", "my wife", "my mother", "my dad", "my partner")
HELP_NUMBERS = ("999", "911", "112", "111")


class UnseenText:
    """A stream of (question, answer) pairs in which sentences practically never repeat."""

    def __init__(self, seed: int = 0, knowledge: KnowledgeBase | None = None,
                 red_flag_rate: float = 0.08, dose_error_rate: float = 0.05,
                 safety_net_red_flag_rate: float = 0.5) -> None:
        """`red_flag_rate`: share of questions that present an emergency, and of answers that
        mention a red flag without emergency advice; `dose_error_rate`: share of dose sentences
        with a dose above the drug's maximum; `safety_net_red_flag_rate`: share of answers whose
        closing safety-netting names a red flag (the others give general advice)."""
        self.rng = random.Random(seed)
        self.knowledge = knowledge or load_knowledge()
        self.drugs = self.knowledge.drugs
        self.conditions = sorted({term for rule in self.knowledge.contraindications for term in rule.condition_terms
                                  if not any(c.isdigit() or c == "{" for c in term)})
        self.red_flag_phrases = sorted({trigger for flag in self.knowledge.red_flags for trigger in flag.triggers
                                        if not any(c.isdigit() for c in trigger)})
        self._question_drugs = [self.rng.choice(self.drugs), self.rng.choice(self.drugs)]
        self._cast = list(self._question_drugs)
        self.red_flag_rate = red_flag_rate
        self.dose_error_rate = dose_error_rate
        self.safety_net_red_flag_rate = safety_net_red_flag_rate
        self._body: tuple[Callable[[], str], ...] = (
            self._dose, self._dose, self._drug_class, self._negation, self._numbers, self._advice,
            self._reassurance, self._condition_note, self._age_note, self._duration_note)

    # -- small pieces ------------------------------------------------------------------------

    def _drug_name(self, drug: Drug | None = None) -> tuple[str, Drug]:
        """How a drug of the answer's cast (or `drug`) is written: its generic name or a brand."""
        drug = drug or self.rng.choice(self._cast)
        return (self.rng.choice(drug.brands) if drug.brands and self.rng.random() < 0.3 else drug.name), drug

    def _dose_words(self, drug: Drug) -> tuple[str, str]:
        """(amount, frequency) of a plausible dose: a usual strength, at most the single maximum,
        at a frequency that keeps the day's total within the daily maximum, written in mg, g,
        micrograms or as millilitres of a liquid."""
        rng = self.rng
        mg = rng.choice(drug.common_strengths_mg or (rng.choice((2.5, 5, 10, 20, 50, 100)),)) * rng.choice((0.5, 1))
        mg = min(mg, drug.max_single_mg or mg)
        daily_max = drug.max_weekly_mg / 7 if drug.max_weekly_mg else drug.max_daily_mg
        frequency = rng.choice([words for words, per_day in FREQUENCIES.items()
                                if daily_max is None or mg * per_day <= daily_max] or ["once a week"])
        unit = rng.choice(UNITS)
        if unit == "g" and mg >= 250:
            return f"{mg / 1000:g} g", frequency
        if mg < 1 or (unit == "micrograms" and mg <= 5):
            return f"{mg * 1000:g} micrograms", frequency
        concentration = rng.choice((120, 250, 500))
        if unit == "ml" and mg * 5 / concentration >= 1:
            return f"{mg * 5 / concentration:.0f} ml of the {concentration} mg/5 ml liquid", frequency
        return f"{mg:g} mg", frequency

    def _duration(self) -> str:
        count = self.rng.randint(2, 14)
        return f"{count} {self.rng.choice(DURATIONS)}s"

    def _help(self) -> str:
        return self.rng.choice(HELP_NUMBERS)

    # -- sentences ---------------------------------------------------------------------------

    def _dose(self) -> str:
        name, drug = self._drug_name()
        amount, frequency = self._dose_words(drug)
        if self.rng.random() < self.dose_error_rate and drug.max_single_mg:
            amount = f"{drug.max_single_mg * self.rng.choice((2, 3, 5)):g} mg"  # a planted overdose
        return self.rng.choice((
            f"{name} {amount} {frequency} for {self._duration()} is a common choice.",
            f"You could take {amount} of {name} {frequency}, with food if it upsets you.",
            f"The usual amount of {name} is {amount} {frequency}; check the leaflet first.",
            f"Many adults manage on {amount} {name} {frequency} for up to {self._duration()}.",
        ))

    def _drug_class(self) -> str:
        name, drug = self._drug_name()
        group = self.rng.choice(drug.classes).replace("_", " ") if drug.classes else "medicine"
        other, _ = self._drug_name()
        return self.rng.choice((
            f"{name} belongs to the {group} group, so ask before combining it with {other}.",
            f"Because {name} is a {group} medicine, your pharmacist should check it against {other}.",
            f"As a {group}, {name} can interact with other medicines such as {other}.",
        ))

    def _negation(self) -> str:
        condition = self.rng.choice(self.conditions)
        name, _ = self._drug_name()
        symptom = self.rng.choice(SYMPTOMS).removeprefix("a ").removeprefix("an ")
        return self.rng.choice((
            f"You don't mention {condition}, which matters before taking {name}.",
            f"There is no sign of {condition}, so {name} should be fine for you.",
            f"{symptom.capitalize()} for {self.rng.randint(2, 60)} days is not usually caused by {name}.",
            f"If you have never had {condition}, {name} is less of a worry.",
        ))

    def _numbers(self) -> str:
        rng = self.rng
        name, _ = self._drug_name()
        return rng.choice((
            f"A temperature of {rng.randint(37, 39)}.{rng.randint(0, 9)} C on day {rng.randint(1, 14)} is common, "
            f"and {name} can bring it down.",
            f"A reading of {rng.randint(105, 160)}/{rng.randint(60, 95)} on {name} is worth repeating in "
            f"{rng.randint(2, 8)} weeks.",
            f"About {rng.randint(2, 60)}% of people on {name} notice it settle within {rng.randint(2, 30)} days.",
            f"Drink {rng.randint(6, 10)} glasses of water and walk for {rng.randint(10, 45)} minutes a day "
            f"for {self._duration()} while on {name}.",
            f"Roughly {rng.randint(1, 9)} in {rng.choice((10, 20, 100))} people get mild side effects from {name}.",
        ))

    def _advice(self) -> str:
        rng = self.rng
        name, _ = self._drug_name()
        return rng.choice((
            f"Rest for {self._duration()} on {name}, keep the room at about {rng.randint(16, 22)} degrees and eat "
            f"every {rng.randint(2, 5)} hours.",
            f"Try a cool compress for {rng.randint(5, 20)} minutes {rng.choice(FREQUENCY_WORDS)} "
            f"for {self._duration()}.",
            f"Keep a diary of the symptoms and doses of {name} for {self._duration()} and bring it in after "
            f"{rng.randint(2, 30)} days.",
            f"Gentle stretching for {rng.randint(5, 30)} minutes {rng.choice(FREQUENCY_WORDS)} usually helps within "
            f"{self._duration()}.",
            f"Avoid alcohol for {self._duration()} while you are taking {name}.",
        ))

    def _reassurance(self) -> str:
        symptom = self.rng.choice(SYMPTOMS)
        days = self.rng.randint(2, 60)
        return self.rng.choice((
            f"{symptom.capitalize()} that started {days} days ago usually settles within {self._duration()}.",
            f"Most people with {symptom} feel better within {self._duration()}, even after {days} days of it.",
            f"{symptom.capitalize()} for {days} days is common and rarely a sign of anything serious.",
            f"Symptoms like {symptom} often clear up on their own in {self._duration()}, {days} days at most.",
        ))

    def _condition_note(self) -> str:
        condition = self.rng.choice(self.conditions)
        name, _ = self._drug_name()
        return self.rng.choice((
            f"If you have {condition}, tell your doctor before starting {name}.",
            f"People with {condition} may need a lower dose of {name}.",
            f"With {condition} it is safer to ask a pharmacist about {name} first.",
        ))

    def _age_note(self) -> str:
        rng = self.rng
        name, _ = self._drug_name()
        return rng.choice((
            f"For a {rng.randint(2, 15)} year old weighing {rng.randint(12, 55)} kg the dose of {name} is lower.",
            f"At {rng.randint(18, 90)} years old on {name}, kidney function is worth checking every "
            f"{rng.randint(3, 12)} months.",
            f"Babies under {rng.randint(2, 6)} months with {rng.choice(SYMPTOMS)} should see a doctor rather than "
            f"take {name}.",
        ))

    def _duration_note(self) -> str:
        symptom = self.rng.choice(SYMPTOMS)
        name, _ = self._drug_name()
        return self.rng.choice((
            f"If {symptom} has lasted more than {self._duration()} despite {name}, book a routine appointment.",
            f"See your doctor if {symptom} keeps coming back over the next {self._duration()} on {name}.",
            f"Stop {name} after {self._duration()} if you notice no change.",
        ))

    def _opening(self) -> str:
        symptom = self.rng.choice(SYMPTOMS)
        return self.rng.choice((
            f"Thanks for asking about {symptom} on day {self.rng.randint(2, 60)} of {self._drug_name()[0]}.",
            f"Sorry to hear about {symptom} for {self._duration()} with {self.rng.choice(RELATIVES)} away.",
            f"{symptom.capitalize()} for {self._duration()} is understandably worrying at {self.rng.randint(18, 90)}.",
        ))

    def _safety_net(self) -> str:
        flag = self.rng.choice(self.red_flag_phrases)
        days = self.rng.randint(2, 60)
        if self.rng.random() >= self.safety_net_red_flag_rate:
            symptom, name = self.rng.choice(SYMPTOMS), self._drug_name()[0]
            return self.rng.choice((
                f"See a doctor if {symptom} is no better after {days} days of {name}, or sooner if it gets worse.",
                f"Speak to your pharmacist or call {self._help()} if {symptom} worries you in the next {days} days.",
            ))
        return self.rng.choice((
            f"If you notice {flag} in the next {self._duration()}, call {self._help()} straight away.",
            f"Get emergency help by calling {self._help()} if there is ever {flag}, even {days} days from now.",
            f"Should {flag} happen at any point in the next {days} days, go to the emergency department or call "
            f"{self._help()} now.",
        ))

    def _red_flag_aside(self) -> str:
        """A red-flag phrase with no emergency advice: the kind of answer the guard must veto."""
        flag = self.rng.choice(self.red_flag_phrases)
        return self.rng.choice((f"Some people also get {flag}, but it usually passes.",
                                f"Even {flag} is rarely anything to worry about."))

    # -- whole texts -------------------------------------------------------------------------

    def question(self) -> str:
        rng = self.rng
        self._question_drugs = [rng.choice(self.drugs), rng.choice(self.drugs)]
        name, _ = self._drug_name(self._question_drugs[0])
        other, _ = self._drug_name(self._question_drugs[1])
        symptom = rng.choice(SYMPTOMS)
        if rng.random() < self.red_flag_rate:
            return f"{rng.choice(RELATIVES).capitalize()} has {rng.choice(self.red_flag_phrases)}. What should we do?"
        return rng.choice((
            f"I've had {symptom} for {self._duration()}. What can I take?",
            f"How much {name} can I give {rng.choice(RELATIVES)}, who is {rng.randint(2, 80)} and weighs "
            f"{rng.randint(12, 95)} kg?",
            f"I take {name} for {rng.choice(self.conditions)}. Is {other} safe with it?",
            f"What is the maximum dose of {name} in a day?",
            f"I'm {rng.randint(18, 85)} with {rng.choice(self.conditions)} and {symptom}. Any advice?",
            f"Can I take {name} and {other} together for {symptom}?",
        ))

    def answer(self) -> str:
        """300 to 1,000 characters of freshly composed sentences (every sentence is at most ~150
        characters, so the loop always passes 300 before a sentence could overflow 1,000)."""
        rng = self.rng
        # Like a real answer, it talks about a few drugs: the question's and up to two others.
        extra = [rng.choice(self.drugs) for _ in range(rng.randint(0, 2))]
        self._cast = self._question_drugs[: rng.randint(1, 2)] + extra
        target = rng.randint(MIN_ANSWER_CHARS, MAX_ANSWER_CHARS)
        sentences = [self._opening()]
        ending = self._red_flag_aside() if rng.random() < self.red_flag_rate else self._safety_net()
        length = len(sentences[0]) + 1 + len(ending)
        while True:
            sentence = rng.choice(self._body)()
            if length + 1 + len(sentence) > MAX_ANSWER_CHARS:
                break
            sentences.append(sentence)
            length += 1 + len(sentence)
            if length >= target:
                break
        return " ".join(sentence[0].upper() + sentence[1:] for sentence in (*sentences, ending))

    def pairs(self, count: int, answers_per_question: int = ANSWERS_PER_QUESTION) -> list[tuple[str, str]]:
        """`count` pairs; each question is answered `answers_per_question` times in a row."""
        result: list[tuple[str, str]] = []
        while len(result) < count:
            question = self.question()
            result.extend((question, self.answer()) for _ in range(min(answers_per_question, count - len(result))))
        return result


def split_sentences(text: str) -> list[str]:
    """Sentence-ish pieces, for counting how often a sentence repeats."""
    return [piece.strip() for piece in text.replace("? ", ". ").split(". ") if piece.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="Sample pairs to print.")
    args = parser.parse_args()
    if args.pairs < 1 or args.show < 0:
        parser.error("--pairs must be at least 1 and --show at least 0")
    pairs = UnseenText(seed=args.seed).pairs(args.pairs)
    lengths = [len(answer) for _, answer in pairs]
    sentences = [s for _, answer in pairs for s in split_sentences(answer)]
    for question, answer in pairs[: args.show * ANSWERS_PER_QUESTION: ANSWERS_PER_QUESTION]:
        print(f"Q: {question}\nA: {answer}\n")
    print(f"{len(pairs):,} pairs, {len({q for q, _ in pairs}):,} questions; answers {min(lengths)}-{max(lengths)} "
          f"chars (median {statistics.median(lengths):.0f}); {len(sentences):,} sentences, "
          f"{len(set(sentences)) / len(sentences):.1%} distinct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
