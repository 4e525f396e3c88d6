"""A purge leaves no copy of the text anywhere under the home."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
from helpers import HashingEmbedder, open_memos
from sqlalchemy import func, select

from memos import store
from memos.client import Memos
from memos.plaintext.embedder import embed
from memos.store import artifacts
from memos.store.files import atomic_path
from memos.store.models import Embedding, Event


def _holders(home: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """For each needle, the files under ``home`` whose bytes contain it."""
    files = [p for p in home.rglob("*") if p.is_file()]
    return {
        name: [str(p.relative_to(home)) for p in files if needle in p.read_bytes()]
        for name, needle in needles.items()
    }


def _fake_snapshot(mem: Memos, item_id: str, text: str) -> str:
    """A KV artifact built from the item, holding its text as a snapshot does
    (its block in the row's metadata, its tokens in the file)."""
    cube = mem.core.cube("default")
    artifact_id = str(uuid.uuid4())
    path = mem.config.home / "kv" / cube.id / f"{artifact_id}.safetensors"
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    artifacts.register(
        mem.db,
        mem.config.home,
        cube,
        artifacts.NewArtifact(artifact_id, "kv", path, "0" * 64, 1, "lm:x", {"block": text}),
        [mem.get(item_id)],
        store.EventSpec(mem.clock.now(), "kv.build"),
    )
    return artifact_id


def test_purge_leaves_no_copy_of_the_text_in_any_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret = f"Øresund passcode {uuid.uuid4().hex}"
    first, second = f"{secret} (v1)", f"{secret} (v2)"
    vectors = embed(HashingEmbedder(), [first, second])
    needles = {
        "secret": secret.encode("utf-8"),
        "v1 vector": vectors[0].astype(np.float32).tobytes(),
        "v2 vector": vectors[1].astype(np.float32).tobytes(),
    }
    mem = open_memos(home)
    mem.add_many([f"filler memory number {i}" for i in range(300)])
    item = mem.add(first, metadata={"note": secret}, tags=["private"])
    mem.update(item.id, second)
    mem.search(secret)
    mem.close()
    mem = open_memos(home)
    mem.search("filler")
    snapshot = _fake_snapshot(mem, item.id, second)
    assert all(_holders(home, needles).values())  # the test can see every copy

    mem.purge(item.id)
    assert _holders(home, needles) == {name: [] for name in needles}
    mem.close()
    assert _holders(home, needles) == {name: [] for name in needles}

    mem = open_memos(home)
    assert mem.search(secret, k=300)[0].item.text.startswith("filler")
    assert [s.id for s in mem.activation.snapshots()] == []
    with mem.db.read() as session:
        kinds = [e.kind for e in session.scalars(select(Event).where(Event.item_id == item.id))]
        removed = session.scalar(select(Event).where(Event.kind == "kv.remove"))
    assert kinds[-1] == "purge" and removed is not None
    assert removed.details == {"artifact": snapshot}
    mem.close()


def test_an_embedding_another_item_shares_is_kept(mem: Memos) -> None:
    mine = mem.add("shared words")
    theirs = mem.add("shared words", cube="other")
    mem.purge(mine.id)
    with mem.db.read() as session:
        count = session.scalar(select(func.count()).select_from(Embedding))
    assert count == 1
    assert mem.search("shared words", cube="other")[0].item.id == theirs.id


def test_another_process_never_saves_a_purged_vector_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret = f"purged elsewhere {uuid.uuid4().hex}"
    vector = embed(HashingEmbedder(), [secret])[0].astype(np.float32).tobytes()
    one = open_memos(home)
    item = one.add(secret)
    one.add("something else")
    one.search(secret)  # this process holds the vector in its loaded index
    two = open_memos(home)
    two.purge(item.id)
    two.close()
    one.add("a change, so the index is saved on close")
    one.close()
    assert _holders(home, {"vector": vector}) == {"vector": []}
