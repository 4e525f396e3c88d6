"""Text normalization, hashing, chunking and message ingest."""

from __future__ import annotations

import pytest

from memos import InvalidInputError
from memos.client import Memos
from memos.plaintext.text import chunk_text
from memos.validation import content_hash, normalize_text


def test_normalization_and_hash() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert normalize_text(f"  {decomposed}\n") == composed
    assert content_hash(normalize_text(decomposed)) == content_hash(composed)


@pytest.mark.parametrize(("size", "overlap"), [(50, 10), (100, 0), (37, 36)])
def test_chunks_cover_text_with_overlap(size: int, overlap: int) -> None:
    text = " ".join(f"word{i}" for i in range(200))
    chunks = chunk_text(text, size, overlap)
    assert all(len(c) <= size for c in chunks)
    assert chunks[0].startswith("word0") and chunks[-1].endswith("word199")
    joined = " ".join(chunks)
    assert all(f"word{i}" in joined for i in range(200))


def test_messages_keep_speaker_role_and_time(mem: Memos) -> None:
    records = mem.add_messages(
        [
            {
                "role": "user",
                "name": "Ana",
                "content": "I moved to Porto",
                "timestamp": "2024-05-01T10:00:00Z",
            },
            {"role": "assistant", "content": "Nice, how is it?", "metadata": {"mood": "curious"}},
        ],
        session_id="chat-1",
    )
    first, second = records
    assert first.text == "Ana: I moved to Porto" and first.speaker == "Ana" and first.role == "user"
    assert first.event_time is not None and first.event_time.year == 2024
    assert second.text == "assistant: Nice, how is it?" and second.metadata["mood"] == "curious"
    assert {r.session_id for r in records} == {"chat-1"} and {r.source_kind for r in records} == {
        "message"
    }
    plain = mem.add_messages([{"role": "user", "content": "raw"}], prefix_speaker=False)
    assert plain[0].text == "raw"


@pytest.mark.parametrize(
    "messages",
    [
        "a string",
        [{"role": "user", "content": ""}],
        [{"content": "x"}],
        [{"role": "u", "content": "x", "x": 1}],
    ],
)
def test_bad_messages(mem: Memos, messages: object) -> None:
    with pytest.raises(InvalidInputError):
        mem.add_messages(messages)  # type: ignore[arg-type]
    assert mem.cubes() == []
