"""Question forms made from a memory's own text."""

from __future__ import annotations

import pytest

from memos.parametric import questions, roles


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
def test_without_the_parser_free_form_memories_are_asked_for_names_numbers_or_last_word(
    text: str, spans: list[str]
) -> None:
    assert not questions.ask_roles  # the default
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


needs_parser = pytest.mark.skipif(
    not roles.available(),
    reason="the parse extra (spaCy and its English pipeline) is not installed",
)


@needs_parser
@pytest.mark.parametrize(
    ("text", "asked"),
    [
        (
            "I finally got my bike fixed by Tomás last week.",
            {
                "Who fixed my bike?": "Tomás",
                "When did I finally get my bike fixed by Tomás?": "last week",
                "What did I finally get fixed by Tomás last week?": "bike",
            },
        ),
        (
            "We moved to Porto in May.",
            {"Where did we move in May?": "Porto", "When did we move to Porto?": "May"},
        ),
        (
            "My brother Anselm lives in Gdańsk and works at a shipyard.",
            {
                "What is my brother's name?": "Anselm",
                "Where does my brother Anselm live?": "Gdańsk",
                "Where does my brother Anselm work?": "shipyard",
            },
        ),
        (
            "We paid 3,400 euros for the new boiler in January.",
            {
                "How much did we pay for the new boiler in January?": "3,400",
                "What did we pay 3,400 euros for in January?": "boiler",
                "When did we pay 3,400 euros for the new boiler?": "January",
            },
        ),
        ("The fence was painted by Ada last summer.", {"Who painted the fence?": "Ada"}),
    ],
)
def test_every_role_of_a_memory_is_asked_the_way_a_person_asks(
    text: str, asked: dict[str, str]
) -> None:
    found = {role.question: role.answer for role in roles.roles(text) or []}
    assert asked.items() <= found.items()


@needs_parser
def test_a_role_is_answered_in_a_full_sentence_and_in_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(questions, "ask_roles", True)
    asked = questions.training_questions("We moved to Porto in May.")
    where = [q for q in asked if q.answer == "Porto"]
    assert [q.prompt for q in where] == [
        "Where did we move in May?",
        "Remind me, where did we move in May?",
    ]
    assert [q.reply for q in where] == ["You moved to Porto in May.", "Porto."]
    checked = questions.check_questions("We moved to Porto in May.")
    assert {q.prompt for q in checked} == {
        "Quick question: Where did we move in May?",
        "Quick question: When did we move to Porto?",
    }


@needs_parser
def test_a_memory_with_no_askable_role_falls_back_to_its_spans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(questions, "ask_roles", True)
    assert roles.roles("And so on, as ever.") == []
    assert questions.check_questions("And so on, as ever.") == []
