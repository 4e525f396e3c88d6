"""The system of record, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from memos import DuplicateError, UnknownCubeError, UnknownItemError
from memos.client import Memos
from memos.store.models import Artifact, ArtifactSource, Event


def test_add_get_roundtrip_keeps_every_field(any_mem: Memos) -> None:
    when = any_mem.clock.now() - timedelta(days=3)
    record = any_mem.add(
        "  Alice prefers green tea  ",
        cube="alice",
        metadata={"source": "chat", "n": 2},
        tags=["pref", "drink"],
        user_id="alice",
        agent_id="bot",
        session_id="s1",
        speaker="Alice",
        role="user",
        event_time=when,
        pinned=True,
        trust=0.5,
    )
    got = any_mem.get(record.id)
    assert got == record
    assert got.text == "Alice prefers green tea"
    assert got.tags == ["drink", "pref"]
    assert got.metadata == {"source": "chat", "n": 2}
    assert (got.user_id, got.agent_id, got.session_id, got.speaker, got.role) == (
        "alice",
        "bot",
        "s1",
        "Alice",
        "user",
    )
    assert got.event_time == when
    assert got.pinned and got.trust == 0.5 and got.version == 1 and got.state == "active"
    assert len(got.content_hash) == 64


def test_exact_duplicates_are_stored_once(any_mem: Memos) -> None:
    first = any_mem.add("the sky is blue")
    again = any_mem.add("the sky is blue  ")
    batch = any_mem.add_many(["the sky is blue", "grass is green", "grass is green"])
    assert again.id == first.id
    assert batch[0].id == first.id and batch[1].id == batch[2].id
    assert any_mem.stats().items == 2
    other_cube = any_mem.add("the sky is blue", cube="other")
    assert other_cube.id != first.id


def test_update_keeps_history_and_reaches_search(any_mem: Memos) -> None:
    record = any_mem.add("Bob lives in Paris", tags=["home"])
    updated = any_mem.update(record.id, "Bob lives in Rome", tags=["home", "moved"])
    assert updated.version == 2 and updated.text == "Bob lives in Rome"
    history = any_mem.history(record.id)
    assert [v.version for v in history] == [1, 2]
    assert [v.text for v in history] == ["Bob lives in Paris", "Bob lives in Rome"]
    assert history[0].tags == ["home"]
    hits = any_mem.search("Rome", k=1)
    assert hits and hits[0].item.id == record.id and hits[0].item.version == 2
    assert all("Paris" not in h.item.text for h in any_mem.search("Paris", k=5))


def test_update_metadata_only_is_a_version_too(any_mem: Memos) -> None:
    record = any_mem.add("note")
    updated = any_mem.update(record.id, metadata={"checked": True}, reason="review")
    assert updated.version == 2 and updated.text == "note"
    assert any_mem.history(record.id)[-1].reason == "review"


def test_update_to_existing_text_is_refused(any_mem: Memos) -> None:
    a = any_mem.add("alpha")
    any_mem.add("beta")
    with pytest.raises(DuplicateError):
        any_mem.update(a.id, "beta")
    assert any_mem.get(a.id).text == "alpha"


def test_soft_delete_restore_and_purge(any_mem: Memos) -> None:
    record = any_mem.add("secret plan")
    any_mem.delete(record.id)
    assert any_mem.get(record.id).state == "deleted"
    assert not any_mem.search("secret plan")
    assert any_mem.stats().by_state == {"deleted": 1}
    restored = any_mem.restore(record.id)
    assert restored.state == "active"
    assert any_mem.search("secret plan")[0].item.id == record.id
    any_mem.purge(record.id)
    with pytest.raises(UnknownItemError):
        any_mem.get(record.id)
    with pytest.raises(UnknownItemError):
        any_mem.history(record.id)
    assert not any_mem.search("secret plan")
    with any_mem.db.read() as session:
        kinds = list(session.scalars(select(Event.kind).where(Event.item_id == record.id)))
    assert kinds == ["add", "delete", "restore", "purge"]


def test_add_after_delete_creates_a_new_item(any_mem: Memos) -> None:
    first = any_mem.add("repeatable")
    any_mem.delete(first.id)
    second = any_mem.add("repeatable")
    assert second.id != first.id
    with pytest.raises(DuplicateError):
        any_mem.restore(first.id)


def test_list_and_iterate(any_mem: Memos) -> None:
    records = any_mem.add_many([f"fact number {i}" for i in range(25)])
    listed = any_mem.list(limit=10)
    assert len(listed) == 10
    assert [r.id for r in any_mem.iterate(batch=7)] == [r.id for r in records]
    any_mem.delete(records[0].id)
    assert len(list(any_mem.iterate())) == 24
    assert len(any_mem.list(limit=100, filter={"states": ["active"]})) == 24


def test_unknown_cube_on_read_lists_known(any_mem: Memos) -> None:
    any_mem.add("x", cube="work")
    with pytest.raises(UnknownCubeError, match="work"):
        any_mem.search("x", cube="wrok")
    with pytest.raises(UnknownCubeError):
        any_mem.stats("nope")
    assert any_mem.cubes() == ["work"]


def test_changes_mark_artifacts_stale(any_mem: Memos) -> None:
    record = any_mem.add("fact for a snapshot")
    now = any_mem.clock.now()

    def register(session):  # type: ignore[no-untyped-def]
        artifact = Artifact(
            id="a1",
            cube_pk=1,
            kind="kv",
            path="/x",
            digest="blake3:" + "0" * 64,
            byte_size=1,
            model_fingerprint="m",
            created_at=now,
            meta={},
        )
        session.add(artifact)
        session.flush()
        session.add(ArtifactSource(artifact_pk=artifact.pk, item_id=record.id, content_hash="h"))

    any_mem.db.write(register)
    any_mem.update(record.id, "fact for a snapshot, revised")
    with any_mem.db.read() as session:
        artifact = session.scalar(select(Artifact))
        assert artifact is not None and artifact.stale
        assert artifact.stale_reason == "source item updated"


def test_stats_counts(any_mem: Memos) -> None:
    a, _ = any_mem.add_many([{"text": "one", "tags": ["x", "y"]}, {"text": "two", "tags": ["y"]}])
    any_mem.update(a.id, "one, edited")
    stats = any_mem.stats()
    assert (stats.items, stats.versions, stats.tags, stats.embedded) == (2, 3, 2, 2)
    assert stats.index_entries == 2 and stats.index_revision == stats.revision
    with any_mem.db.read() as session:
        kinds = list(session.scalars(select(Event.kind).order_by(Event.pk)))
    assert kinds == ["cube.create", "add", "add", "update"]
