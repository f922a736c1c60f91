"""One rendering of a conversation for the server, DPO, the reward model and the evaluation."""

from dataclasses import dataclass

from clinical_rlhf.conversation import render_conversation, render_question


@dataclass
class Turn:
    role: str
    content: str


TURNS = [{"role": "system", "content": " Be brief. "},
         {"role": "user", "content": "I have had chest pain since lunch."},
         {"role": "assistant", "content": "Thanks for telling me."},
         {"role": "developer", "content": "Answer in English."},
         {"role": "user", "content": "How much water should I drink?"}]
EXPECTED = ("Be brief.\n\nAnswer in English.\n\nUser: I have had chest pain since lunch.\n\n"
            "Assistant: Thanks for telling me.\n\nHow much water should I drink?")


def test_instructions_first_then_earlier_turns_then_the_question():
    assert render_conversation(TURNS) == EXPECTED


def test_message_objects_render_like_mappings():
    assert render_conversation([Turn(**turn) for turn in TURNS]) == EXPECTED


def test_a_question_after_earlier_turns_and_alone():
    assert render_question("How much water should I drink?", TURNS[:-1]) == EXPECTED
    assert render_question("  Just this?  ") == "Just this?"
