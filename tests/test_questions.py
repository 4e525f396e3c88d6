"""Question forms made from a memory's own text."""

from __future__ import annotations

import pytest

from memos.parametric import questions


def test_a_statement_is_asked_for_its_value_in_the_agents_voice() -> None:
    asked = questions.training_questions("My sister's name is Ilse.")
    assert len(asked) == len(questions.ASK) + 1  # and the possessive the other way round
    assert asked[0].prompt == "What is my sister's name?"
    assert asked[-1].prompt == "What is the name of my sister?"
    assert {q.reply for q in asked} == {"Your sister's name is Ilse."}
    assert {q.answer for q in asked} == {"Ilse"}


def test_only_a_possessive_subject_is_reordered() -> None:
    asked = questions.training_questions("The meeting room is B4.")
    assert len(asked) == len(questions.ASK)


def test_training_and_check_wordings_never_overlap() -> None:
    for text in ("Zorbil's favourite colour is amberine.", "I moved to Porto in May."):
        trained = {q.prompt for q in questions.training_questions(text)}
        checked = {q.prompt for q in questions.check_questions(text)}
        assert trained and checked and not trained & checked


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("I moved to Porto in May.", ["Porto", "May"]),
        ("Ferran fixed my bike last week.", ["Ferran"]),
        ("We never book flights before 9 am.", ["9"]),
        ("I am vegan since 2019.", ["2019"]),
        ("I'm allergic to hazelnuts.", ["hazelnuts"]),
        ("And so on, as ever.", []),
    ],
)
def test_free_form_memories_are_asked_for_names_numbers_or_their_last_word(
    text: str, spans: list[str]
) -> None:
    assert questions.spans(text) == spans
    asked = questions.training_questions(text)
    assert {q.answer for q in asked} == set(spans)
    assert all("___" in q.prompt or "..." in q.prompt for q in asked)


def test_agent_voice() -> None:
    assert questions.agent_voice("I moved to Porto in May.") == "You moved to Porto in May."
    assert questions.agent_voice("I am at our flat, my dear.") == "You are at your flat, your dear."
    assert questions.agent_voice("We leave at 9 am.") == "You leave at 9 am."


def test_text_without_a_name_number_or_statement_cannot_be_checked() -> None:
    assert questions.check_questions("And so on, as ever.") == []
    assert questions.statement("And so on, as ever.") is None
