"""The registry of tier artifacts (KV snapshots, adapters) shared by both tiers.

Each artifact row records its file, SHA-256, size, model fingerprint and
metadata; its source items (with the content hashes it was built from) are
what lets changes to them mark it stale. Registering and removing an artifact
each append an event that names the tiers involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from memos import store
from memos.errors import NotFoundError
from memos.records import MemoryRecord
from memos.store.db import Database
from memos.store.models import Artifact, ArtifactSource, Cube


@dataclass(frozen=True)
class NewArtifact:
    """A built artifact file about to be registered."""

    id: str
    kind: str
    path: Path
    sha256: str
    byte_size: int
    model_fingerprint: str
    meta: dict[str, Any]


def register(
    db: Database,
    cube: Cube,
    artifact: NewArtifact,
    sources: Sequence[MemoryRecord],
    event: store.EventSpec,
) -> None:
    """Insert the artifact, its sources and the event in one transaction."""

    def work(session: Any) -> None:
        row = Artifact(
            id=artifact.id,
            cube_pk=cube.pk,
            kind=artifact.kind,
            path=str(artifact.path),
            sha256=artifact.sha256,
            byte_size=artifact.byte_size,
            model_fingerprint=artifact.model_fingerprint,
            created_at=event.at,
            meta=artifact.meta,
        )
        session.add(row)
        session.flush()
        session.add_all(
            ArtifactSource(artifact_pk=row.pk, item_id=r.id, content_hash=r.content_hash)
            for r in sources
        )
        store.log_spec(session, event, cube_pk=cube.pk)

    db.write(work)


def rows(db: Database, kind: str, cube_pk: int | None) -> list[tuple[Artifact, str]]:
    """Artifacts of a kind with their cube names, newest first."""
    with db.read() as session:
        stmt = select(Artifact, Cube.name).join(Cube).where(Artifact.kind == kind)
        if cube_pk is not None:
            stmt = stmt.where(Cube.pk == cube_pk)
        stmt = stmt.order_by(Artifact.created_at.desc(), Artifact.pk.desc())
        return [(artifact, name) for artifact, name in session.execute(stmt)]


def remove(db: Database, kind: str, artifact_id: str, event: store.EventSpec) -> Path:
    """Delete an artifact's row (and sources) with an event; returns its file path."""

    def work(session: Any) -> str:
        row = session.scalar(
            select(Artifact).where(Artifact.id == artifact_id, Artifact.kind == kind)
        )
        if row is None:
            raise NotFoundError(f"no {kind} with id {artifact_id!r}")
        store.log_spec(session, event, cube_pk=row.cube_pk)
        session.execute(delete(Artifact).where(Artifact.pk == row.pk))
        return str(row.path)

    return Path(db.write(work))


def update_meta(db: Database, artifact_id: str, **changes: Any) -> None:
    """Merge ``changes`` into an artifact's metadata."""

    def work(session: Any) -> None:
        row = session.scalar(select(Artifact).where(Artifact.id == artifact_id))
        row.meta = {**row.meta, **changes}

    db.write(work)


def sha256_of(db: Database, artifact_id: str) -> str:
    """The SHA-256 recorded for an artifact's file."""
    with db.read() as session:
        return str(session.scalar(select(Artifact.sha256).where(Artifact.id == artifact_id)))


def exists(db: Database, artifact_id: str) -> bool:
    """Whether an artifact with this id is registered."""
    with db.read() as session:
        return session.scalar(select(Artifact.pk).where(Artifact.id == artifact_id)) is not None
