"""The clinical language file (`data/knowledge/language.yaml`): every set valid, sourced and read
by the code; a broken file ends in one error naming the file and the set."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.knowledge.language import DEFAULT_DIRECTORY, LANGUAGE_FILE, load_language

SOURCE = Path(__file__).resolve().parents[2] / "src" / "clinical_rlhf"


def test_every_set_has_a_purpose_a_source_and_entries() -> None:
    language = load_language()
    assert len(language.sets) >= 50
    for phrase_set in language.sets.values():
        assert phrase_set.purpose and phrase_set.source and phrase_set.entries


def test_every_set_is_read_by_the_code() -> None:
    """A set nobody reads is a phrase list that silently does nothing."""
    code = "\n".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))
    unread = [name for name in load_language().sets if f'"{name}"' not in code]
    assert unread == []


def test_no_phrase_list_is_written_in_the_readers() -> None:
    """The modules that read clinical text hold no literal list of three or more phrases: their
    phrases come from the language file (character tables and grammar patterns aside)."""
    readers = ["safety/context.py", "safety/redflags.py", "safety/medications.py", "safety/checks.py",
               "safety/conversation.py", "reward/text.py", "reward/lexicon.py", "reward/hallucination.py",
               "knowledge/prompt_reading.py", "knowledge/context_reading.py"]
    found = []
    for relative in readers:
        tree = ast.parse((SOURCE / relative).read_text(encoding="utf-8"))
        typing = {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}  # Literal[...]
        for node in ast.walk(tree):
            if id(node) in typing or (isinstance(node, ast.Tuple) and _is_slots(tree, node)):
                continue
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 3 and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value.replace(" ", "").isalpha()
                    for e in node.elts) and any(len(e.value) >= 3 for e in node.elts):
                found.append(f"{relative}:{node.lineno}")
    assert found == []


def _is_slots(tree: ast.AST, node: ast.AST) -> bool:
    return any(isinstance(parent, ast.Assign) and parent.value is node
               and any(getattr(target, "id", "") == "__slots__" for target in parent.targets)
               for parent in ast.walk(tree))


def test_reaches_are_read_from_the_file() -> None:
    from clinical_rlhf.safety import context

    language = load_language()
    assert context.NEGATION_REACH == language.reach("negation_before") == 6
    assert context.HYPOTHETICAL_REACH == language.reach("hypothetical_before")


def _broken(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((DEFAULT_DIRECTORY / LANGUAGE_FILE).read_text(encoding="utf-8"))
    edit(raw)
    (tmp_path / LANGUAGE_FILE).write_text(yaml.safe_dump(raw), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda raw: raw["sets"]["downplay"].pop("source"), "set 'downplay' needs a `source`"),
    (lambda raw: raw["sets"]["hedges"].update(phrases=[]), "set 'hedges': `phrases` must be a non-empty list"),
    (lambda raw: raw["sets"]["stopwords"].update(words=["not a word"]), "holds single words"),
    (lambda raw: raw["sets"]["approval"].update(reach=0), "`reach` must be a positive number"),
    (lambda raw: raw["sets"]["approval"].update(colour="red"), "unknown keys ['colour']"),
    (lambda raw: raw["sets"]["third_party_people"].update(mappings=[["my dad"]]), "each mapping is"),
    (lambda raw: raw.pop("sets"), "expected a mapping with a `sets` mapping"),
])
def test_a_broken_language_file_names_the_file_and_the_set(tmp_path, edit, message) -> None:
    directory = _broken(tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        load_language(directory)
    assert message in str(caught.value) and str(directory) in str(caught.value)


def test_a_directory_without_a_language_file_uses_the_shipped_one(tmp_path) -> None:
    assert load_language(tmp_path).path == DEFAULT_DIRECTORY / LANGUAGE_FILE


def test_unknown_set_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no phrase set 'negation_befor'"):
        load_language().phrases("negation_befor")
