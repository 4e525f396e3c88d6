"""The activation tier: KV snapshots of memory blocks, registered, budgeted, checked.

A snapshot is built from chosen items: their texts go into a block (see
:func:`block_text`), the block becomes the system message of the model's chat
template, and one prefill of that prefix is saved. Each snapshot is a tier
artifact with its source items and their content hashes, so updating,
deleting or purging a source marks it stale; stale snapshots, snapshots of
another model, and files whose bytes no longer match are never used. Each
cube keeps its snapshots within a byte budget, evicting the least recently
used first.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos import store
from memos.activation import snapshot as kv_snapshot
from memos.activation.snapshot import Snapshot
from memos.errors import InvalidInputError, NotFoundError, SnapshotError, UnknownSnapshotError
from memos.fields import DEFAULT_SNAPSHOT_DTYPE
from memos.memory_block import block_text, prefix_text
from memos.records import MemoryRecord, SnapshotInfo, distinct
from memos.store import artifacts
from memos.store.artifacts import ArtifactRecord

if TYPE_CHECKING:
    from memos.core import Core
    from memos.lm import LanguageModel

KIND = "kv"


class ActivationTier:
    """Builds, lists, checks, evicts and hands out KV snapshots of one memos store."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @property
    def folder(self) -> Path:
        return self.core.config.home / "kv"

    def build(
        self,
        cube: str,
        items: Sequence[MemoryRecord],
        *,
        max_tokens: int = 1024,
        dtype: str = DEFAULT_SNAPSHOT_DTYPE,
        artifact_id: str | None = None,
        reason: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> SnapshotInfo:
        """Snapshot a block of the given memories of ``cube`` (the first that fit;
        an item given twice counts once).

        ``artifact_id`` names the snapshot (a scheduler job passes a fixed one,
        so a retried job rewrites the same file); ``reason`` goes in its event,
        ``meta`` into its metadata.
        """
        if max_tokens < 16:
            raise InvalidInputError(f"max_tokens={max_tokens}; allowed: >= 16")
        cube_row = self.core.cube(cube)
        chosen = distinct(items)
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to snapshot")
        lm = self.core.lm
        chosen, ids = self._fit(lm, chosen, max_tokens)
        snapshot = kv_snapshot.prefill(lm, ids, dtype)
        artifact_id = artifact_id or str(uuid.uuid4())
        path = self.folder / cube_row.id / f"{artifact_id}.safetensors"
        digest, size = kv_snapshot.save(snapshot, path)
        self._share(path)
        meta = {
            **(meta or {}),
            "tokens": len(ids),
            "items": len(chosen),
            "dtype": dtype,
            "block": block_text([r.text for r in chosen]),
            "last_used_at": None,
        }
        artifacts.register(
            self.core.db,
            self.core.config.home,
            cube_row,
            artifacts.NewArtifact(artifact_id, KIND, path, digest, size, lm.fingerprint, meta),
            chosen,
            store.EventSpec(
                self.core.clock.now(),
                "kv.build",
                reason=reason,
                from_tier="plaintext",
                to_tier="activation",
                details={
                    "artifact": artifact_id,
                    "items": len(chosen),
                    "tokens": len(ids),
                    "bytes": size,
                },
            ),
        )
        self.enforce_budget(cube)
        return self.info(artifact_id)

    def _fit(
        self, lm: LanguageModel, chosen: list[MemoryRecord], max_tokens: int
    ) -> tuple[list[MemoryRecord], list[int]]:
        """The longest leading run of ``chosen`` whose prefix fits ``max_tokens``."""
        low, high, best = 1, len(chosen), None
        while low <= high:
            mid = (low + high) // 2
            ids = lm.encode(prefix_text(lm, block_text([r.text for r in chosen[:mid]])))
            if len(ids) <= max_tokens:
                best, low = (chosen[:mid], ids), mid + 1
            else:
                high = mid - 1
        if best is None:
            raise InvalidInputError(f"even one memory exceeds max_tokens={max_tokens}")
        return best

    def snapshots(self, cube: str | None = None) -> list[SnapshotInfo]:
        """Snapshots of a cube (all cubes when ``None``), newest first."""
        cube_pk = self.core.cube(cube).pk if cube is not None else None
        home = self.core.config.home
        return [_info(a, home) for a in artifacts.rows(self.core.db, KIND, cube_pk)]

    def info(self, artifact_id: str) -> SnapshotInfo:
        for snapshot in self.snapshots():
            if snapshot.id == artifact_id:
                return snapshot
        raise UnknownSnapshotError(f"no snapshot with id {artifact_id!r}")

    def remove(self, artifact_id: str, reason: str = "user") -> None:
        """Delete a snapshot's file and registration."""
        event = store.EventSpec(
            self.core.clock.now(),
            "kv.remove",
            reason=reason,
            from_tier="activation",
            to_tier="plaintext",
            details={"artifact": artifact_id},
        )
        try:
            recorded = artifacts.remove(self.core.db, KIND, artifact_id, event)
        except NotFoundError:
            raise UnknownSnapshotError(f"no snapshot with id {artifact_id!r}") from None
        self.core.artifact_files.delete(recorded)

    def enforce_budget(self, cube: str) -> list[str]:
        """Evict stale, then least recently used, snapshots until the cube fits its budget."""
        budget = self.core.config.kv_budget_bytes
        snapshots = self.snapshots(cube)
        order = sorted(
            snapshots, key=lambda s: (not s.stale, s.last_used_at or s.created_at.isoformat())
        )
        total = sum(s.byte_size for s in snapshots)
        evicted = []
        for snapshot in order:
            if total <= budget or (snapshot.id == snapshots[0].id and not snapshot.stale):
                continue
            self.remove(snapshot.id, reason="budget" if not snapshot.stale else "stale")
            total -= snapshot.byte_size
            evicted.append(snapshot.id)
        return evicted

    def usable(self, cube: str, *, touch: bool = True) -> tuple[SnapshotInfo, Snapshot] | None:
        """The newest valid snapshot of the cube for the loaded model, loaded and checked.

        Its last use is recorded unless ``touch`` is false (then call :meth:`touch`
        once it has served: chat does, after the first token).
        """
        lm = self.core.lm
        for info in self.snapshots(cube):
            if info.stale:
                continue
            if info.model_fingerprint != lm.fingerprint:
                warnings.warn(
                    f"snapshot {info.id} was made by another model; not used", stacklevel=3
                )
                continue
            if not self._sources_current(info.id):
                self._mark_stale(info.id, "source item changed")
                continue
            try:
                path = self._local_file(info)
                snapshot = kv_snapshot.load(path, self._digest(info.id), lm.fingerprint)
            except SnapshotError as exc:
                warnings.warn(f"{exc}; dropping it", stacklevel=3)
                self.remove(info.id, reason="damaged")
                continue
            if touch:
                self.touch(info.id)
            return info, snapshot
        return None

    def _sources_current(self, artifact_id: str) -> bool:
        return artifacts.sources_current(self.core.db, artifact_id)

    def _mark_stale(self, artifact_id: str, why: str) -> None:
        artifacts.mark_stale(self.core.db, artifact_id, why)

    def block_of(self, artifact_id: str) -> str:
        """The memory block a snapshot caches."""
        return str(artifacts.meta_of(self.core.db, artifact_id)["block"])

    def _share(self, path: Path) -> None:
        """Put a built file in the shared artifact store (removed when that fails)."""
        try:
            self.core.artifact_files.put(artifacts.relative_path(self.core.config.home, path))
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def _local_file(self, info: SnapshotInfo) -> Path:
        """The snapshot's file under this home, fetched from the shared store when
        it is not here (``SnapshotError`` when there is none with its digest)."""
        if not info.path:
            raise SnapshotError(f"snapshot {info.id} has no file under this home")
        recorded = artifacts.relative_path(self.core.config.home, Path(info.path))
        local = self.core.artifact_files.fetch(recorded, self._digest(info.id))
        if local is None:
            raise SnapshotError(f"snapshot file {recorded} is missing or altered")
        return local

    def _digest(self, artifact_id: str) -> str:
        return artifacts.digest_of(self.core.db, artifact_id)

    def touch(self, artifact_id: str) -> None:
        """Record a use of the snapshot (the budget evicts least recently used first)."""
        artifacts.update_meta(
            self.core.db, artifact_id, last_used_at=self.core.clock.now().isoformat()
        )


def _info(artifact: ArtifactRecord, home: Path) -> SnapshotInfo:
    meta = artifact.meta
    path = artifacts.locate(home, artifact.path)
    return SnapshotInfo(
        id=artifact.id,
        cube=artifact.cube,
        path=str(path) if path is not None else "",
        tokens=int(meta.get("tokens", 0)),
        items=int(meta.get("items", 0)),
        byte_size=artifact.byte_size,
        dtype=str(meta.get("dtype", "float32")),
        stale=artifact.stale,
        stale_reason=artifact.stale_reason,
        model_fingerprint=artifact.model_fingerprint,
        created_at=artifact.created_at,
        last_used_at=meta.get("last_used_at"),
        scheduled="hot_set" in meta,
    )
