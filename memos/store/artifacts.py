"""The registry of tier artifacts (KV snapshots, adapters) shared by both tiers.

Each artifact row records its file, digest (:func:`memos.store.files.file_digest`),
size, model fingerprint and metadata; its source items (with the content hashes
it was built from) are what lets changes to them mark it stale. Registering and
removing an artifact each append an event that names the tiers involved.

Files are recorded relative to the home and found again under the current
home (:func:`locate`), so a copied or moved home is an independent home: it
never reads, and never deletes, another home's files. Rows written before
that hold absolute paths: each is re-rooted by its ``<folder>/<cube id>/<file>``
tail under the current home (where a file under :data:`FOLDERS` always lies,
so a path inside the current home stays what it was), and anything else
counts as a missing file.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from memos import store
from memos.errors import NotFoundError
from memos.records import MemoryRecord, State, distinct
from memos.store.cubes import CubeRef
from memos.store.db import Database
from memos.store.models import Artifact, ArtifactSource, Cube, Item

#: The home's folders that hold artifact files, one subfolder per cube.
FOLDERS = ("kv", "adapters")


@dataclass(frozen=True)
class NewArtifact:
    """A built artifact file about to be registered."""

    id: str
    kind: str
    path: Path
    digest: str
    byte_size: int
    model_fingerprint: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class ArtifactRecord:
    """A registered artifact as read from its row (with its cube's stored name).

    ``sources`` (item id -> content hash it was built from) is filled only by
    :func:`with_sources`.
    """

    id: str
    cube: str
    cube_pk: int
    kind: str
    path: str
    digest: str
    byte_size: int
    model_fingerprint: str
    created_at: datetime
    meta: dict[str, Any]
    stale: bool
    stale_reason: str | None
    sources: dict[str, str] = field(default_factory=dict)


def _record(row: Artifact, cube: str, sources: dict[str, str] | None = None) -> ArtifactRecord:
    return ArtifactRecord(
        id=row.id,
        cube=cube,
        cube_pk=row.cube_pk,
        kind=row.kind,
        path=row.path,
        digest=row.digest,
        byte_size=row.byte_size,
        model_fingerprint=row.model_fingerprint,
        created_at=row.created_at,
        meta=dict(row.meta or {}),
        stale=row.stale,
        stale_reason=row.stale_reason,
        sources=dict(sources or {}),
    )


def relative_path(home: Path, path: Path) -> str:
    """``path`` (a file under ``home``) as recorded: relative to the home."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(home))).as_posix()


def locate(home: Path, recorded: str) -> Path | None:
    """The file a recorded path names under ``home``; ``None`` when it lies outside.

    See the module docs for rows written with absolute paths.
    """
    root = Path(os.path.abspath(home))
    path = Path(recorded)
    if not path.is_absolute():
        found = Path(os.path.normpath(root / path))
        return found if found.is_relative_to(root) and found != root else None
    parts = Path(os.path.normpath(path)).parts
    if len(parts) >= 3 and parts[-3] in FOLDERS:
        return root.joinpath(*parts[-3:])
    return None


def delete_file(home: Path, recorded: str) -> None:
    """Delete an artifact's file when it lies under ``home`` (never elsewhere)."""
    path = locate(home, recorded)
    if path is not None:
        path.unlink(missing_ok=True)


def register(
    db: Database,
    home: Path,
    cube: CubeRef,
    artifact: NewArtifact,
    sources: Sequence[MemoryRecord],
    event: store.EventSpec,
) -> None:
    """Insert the artifact (its file recorded relative to ``home``), its sources
    (each item once) and the event in one transaction.

    When that fails, the new file is deleted unless a row already claims it
    (a retried job racing another), so no orphan file is left.
    """

    def work(session: Any) -> None:
        row = Artifact(
            id=artifact.id,
            cube_pk=cube.pk,
            kind=artifact.kind,
            path=relative_path(home, artifact.path),
            digest=artifact.digest,
            byte_size=artifact.byte_size,
            model_fingerprint=artifact.model_fingerprint,
            created_at=event.at,
            meta=artifact.meta,
        )
        session.add(row)
        session.flush()
        session.add_all(
            ArtifactSource(artifact_pk=row.pk, item_id=r.id, content_hash=r.content_hash)
            for r in distinct(sources)
        )
        store.log_spec(session, event, cube_pk=cube.pk)

    try:
        db.write(work)
    except BaseException:
        if not exists(db, artifact.id):
            artifact.path.unlink(missing_ok=True)
        raise


def rows(
    db: Database, kind: str, cube_pk: int | None = None, tenant: str | None = None
) -> list[ArtifactRecord]:
    """Artifacts of a kind (of one cube, or one tenant's cubes), newest first."""
    with db.read() as session:
        stmt = select(Artifact, Cube.name).join(Cube).where(Artifact.kind == kind)
        if cube_pk is not None:
            stmt = stmt.where(Cube.pk == cube_pk)
        if tenant is not None:
            stmt = stmt.where(Cube.tenant == tenant)
        stmt = stmt.order_by(Artifact.created_at.desc(), Artifact.pk.desc())
        return [_record(artifact, name) for artifact, name in session.execute(stmt)]


def with_sources(db: Database, kind: str, cube_pk: int) -> list[ArtifactRecord]:
    """A cube's artifacts of a kind with their sources, newest first."""
    with db.read() as session:
        found = session.execute(
            select(Artifact, Cube.name)
            .join(Cube)
            .where(Artifact.cube_pk == cube_pk, Artifact.kind == kind)
            .order_by(Artifact.created_at.desc(), Artifact.pk.desc())
        ).all()
        sources: dict[int, dict[str, str]] = defaultdict(dict)
        for artifact_pk, item_id, digest in session.execute(
            select(
                ArtifactSource.artifact_pk, ArtifactSource.item_id, ArtifactSource.content_hash
            ).where(ArtifactSource.artifact_pk.in_([row.pk for row, _ in found]))
        ):
            sources[artifact_pk][item_id] = digest
        return [_record(row, name, sources[row.pk]) for row, name in found]


def tenant_of(db: Database, artifact_id: str) -> str | None:
    """The tenant whose cube holds the artifact (``None`` when there is none)."""
    with db.read() as session:
        return session.scalar(
            select(Cube.tenant)
            .join(Artifact, Artifact.cube_pk == Cube.pk)
            .where(Artifact.id == artifact_id)
        )


def sources_current(db: Database, artifact_id: str) -> bool:
    """Whether every source of the artifact is live with the content it was built from."""
    with db.read() as session:
        found = session.execute(
            select(ArtifactSource.content_hash, Item.content_hash, Item.state)
            .join(Artifact, Artifact.pk == ArtifactSource.artifact_pk)
            .outerjoin(Item, Item.id == ArtifactSource.item_id)
            .where(Artifact.id == artifact_id)
        ).all()
    return all(built == now and state != State.DELETED for built, now, state in found)


def mark_stale(db: Database, artifact_id: str, why: str) -> None:
    """Flag one artifact stale, saying why."""

    def work(session: Any) -> None:
        row = session.scalar(select(Artifact).where(Artifact.id == artifact_id))
        if row is not None:
            row.stale, row.stale_reason = True, why

    db.write(work)


def meta_of(db: Database, artifact_id: str) -> dict[str, Any]:
    """An artifact's metadata (empty when there is none)."""
    with db.read() as session:
        meta = session.scalar(select(Artifact.meta).where(Artifact.id == artifact_id))
    return dict(meta or {})


def remove(db: Database, kind: str, artifact_id: str, event: store.EventSpec) -> str:
    """Delete an artifact's row (and sources) with an event; returns its recorded
    path (see :func:`delete_file`)."""

    def work(session: Any) -> str:
        row = session.scalar(
            select(Artifact).where(Artifact.id == artifact_id, Artifact.kind == kind)
        )
        if row is None:
            raise NotFoundError(f"no {kind} with id {artifact_id!r}")
        store.log_spec(session, event, cube_pk=row.cube_pk)
        session.execute(delete(Artifact).where(Artifact.pk == row.pk))
        return str(row.path)

    return str(db.write(work))


def update_meta(db: Database, artifact_id: str, **changes: Any) -> None:
    """Merge ``changes`` into an artifact's metadata."""

    def work(session: Any) -> None:
        row = session.scalar(select(Artifact).where(Artifact.id == artifact_id))
        row.meta = {**row.meta, **changes}

    db.write(work)


def digest_of(db: Database, artifact_id: str) -> str:
    """The digest recorded for an artifact's file."""
    with db.read() as session:
        return str(session.scalar(select(Artifact.digest).where(Artifact.id == artifact_id)))


def exists(db: Database, artifact_id: str) -> bool:
    """Whether an artifact with this id is registered."""
    with db.read() as session:
        return session.scalar(select(Artifact.pk).where(Artifact.id == artifact_id)) is not None
