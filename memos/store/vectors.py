"""Cached embeddings, keyed by content hash and embedder fingerprint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memos.records import State
from memos.store.models import (
    Embedding,
    Item,
)


def cached_vectors(session: Session, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
    """Stored vectors of these content hashes under embedder ``model``."""
    wanted = list(set(hashes))
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(wanted), 500):
        stmt = select(Embedding.content_hash, Embedding.vector).where(
            Embedding.model == model, Embedding.content_hash.in_(wanted[start : start + 500])
        )
        found.update({h: np.frombuffer(v, dtype=np.float32) for h, v in session.execute(stmt)})
    return found


def save_vectors(session: Session, model: str, vectors: dict[str, np.ndarray]) -> None:
    """Store vectors by content hash (already stored ones are left as they are)."""
    if not vectors:
        return
    rows = [
        {
            "model": model,
            "content_hash": h,
            "dim": int(v.shape[0]),
            "vector": v.astype(np.float32).tobytes(),
        }
        for h, v in vectors.items()
    ]
    # The dialect's own INSERT (for ON CONFLICT), imported here: the PostgreSQL
    # dialect module costs every CLI command about 0.1 s to import.
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt: Any = sqlite_insert(Embedding)
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(Embedding)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["model", "content_hash"]), rows)


def count_embedded(session: Session, cube_pk: int, model: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Item)
        .join(Embedding, (Embedding.content_hash == Item.content_hash) & (Embedding.model == model))
        .where(Item.cube_pk == cube_pk, Item.state != State.DELETED)
    )
    return int(session.scalar(stmt) or 0)
