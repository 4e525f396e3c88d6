"""The parametric tier: trained side-GLU adapters, registered, attached, merged.

An adapter file is a safetensors archive (``layer.<i>.G``, ``.K``, ``.V``,
``.tau`` and, for a gated memory, ``.threshold`` per memory layer) with
metadata: model fingerprint, layers, rank and source items with content
hashes. It is written atomically and registered as a tier artifact, so a
change to any source item marks it stale. Whether an adapter is attached is
recorded with it, so generation in any process uses
the attached, non-stale adapters of a cube.
"""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos import store
from memos.errors import InvalidInputError, UnknownAdapterError
from memos.parametric.config import TrainConfig
from memos.records import AdapterInfo, MemoryRecord, distinct
from memos.store import artifacts
from memos.store.artifacts import ArtifactRecord
from memos.store.files import atomic_path, file_digest

if TYPE_CHECKING:
    import torch

    from memos.core import Core
    from memos.parametric import side_memory as sm
    from memos.parametric.training import TrainReport

KIND = "adapter"


class ParametricTier:
    """Consolidates memories into adapters and manages them on the loaded model."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._on_model: set[str] = set()

    @property
    def on_model(self) -> frozenset[str]:
        """Ids of the adapters this process has on the loaded model."""
        return frozenset(self._on_model)

    @property
    def folder(self) -> Path:
        return self.core.config.home / "adapters"

    def consolidate(
        self,
        cube: str,
        items: Sequence[MemoryRecord],
        *,
        config: TrainConfig | None = None,
        progress: Callable[[int, int], None] | None = None,
        adapter_id: str | None = None,
        reason: str = "consolidate",
    ) -> AdapterInfo:
        """Train an adapter of ``cube`` on the given items (each once).

        ``adapter_id`` names the adapter (a scheduler job passes a fixed one, so
        a retried job rewrites the same file); ``reason`` goes in its event.
        """
        from memos.parametric.check import check_memories
        from memos.parametric.training import train_memories

        cube_row = self.core.cube(cube)
        records = distinct(items)
        if not records:
            raise InvalidInputError(f"cube {cube!r} has no memories to consolidate")
        config = config or TrainConfig()
        lm = self.core.lm
        memories, report = train_memories(lm, [r.text for r in records], config, progress)
        check = check_memories(lm, memories, [(r.id, r.text) for r in records])
        adapter_id = adapter_id or str(uuid.uuid4())
        path = self.folder / cube_row.id / f"{adapter_id}.safetensors"
        sha, size = _save(memories, path, lm.fingerprint, records)
        try:
            self.core.artifact_files.put(artifacts.relative_path(self.core.config.home, path))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        training = _report(report)
        meta: dict[str, Any] = {
            "layers": sorted(memories),
            "gate_thresholds": [m.threshold for _, m in sorted(memories.items())]
            if any(m.gated for m in memories.values())
            else [],
            "rank": config.rank,
            "items": len(records),
            "attached": False,
            "training": training,
            "check": check.to_dict(),
        }
        artifacts.register(
            self.core.db,
            self.core.config.home,
            cube_row,
            artifacts.NewArtifact(adapter_id, KIND, path, sha, size, lm.fingerprint, meta),
            records,
            store.EventSpec(
                self.core.clock.now(),
                "adapter.train",
                reason=reason,
                from_tier="plaintext",
                to_tier="parametric",
                details={
                    "adapter": adapter_id,
                    "items": len(records),
                    "question_recall": check.recall,
                    **training,
                },
            ),
        )
        return self.info(adapter_id)

    def adapters(self, cube: str | None = None) -> list[AdapterInfo]:
        """Adapters of a cube (all cubes when ``None``), newest first."""
        cube_pk = self.core.cube(cube).pk if cube is not None else None
        home, hold = self.core.config.home, self.core.config.scheduler.hold_min_recall
        return [_info(a, home, hold) for a in artifacts.rows(self.core.db, KIND, cube_pk)]

    def info(self, adapter_id: str) -> AdapterInfo:
        for adapter in self.adapters():
            if adapter.id == adapter_id:
                return adapter
        raise UnknownAdapterError(f"no adapter with id {adapter_id!r}")

    def attach(self, adapter_id: str) -> AdapterInfo:
        """Attach an adapter to the model (recorded, so other processes attach it too)."""
        info = self.info(adapter_id)
        if info.stale:
            raise InvalidInputError(
                f"adapter {adapter_id} is stale ({info.stale_reason}); retrain it"
            )
        self._load_onto_model(info)
        self._set_meta(adapter_id, attached=True)
        return self.info(adapter_id)

    def detach(self, adapter_id: str) -> AdapterInfo:
        """Take an adapter off the model (offload); its file stays."""
        from memos.parametric import side_memory as sm

        self.info(adapter_id)
        if adapter_id in self._on_model:
            sm.detach(self.core.lm.model, adapter_id)
            self._on_model.discard(adapter_id)
        self._set_meta(adapter_id, attached=False)
        return self.info(adapter_id)

    def sync(self, cube: str) -> list[str]:
        """Put exactly the cube's attached, non-stale adapters on the model."""
        from memos.parametric import side_memory as sm

        wanted = {a.id: a for a in self.adapters(cube) if a.attached and not a.stale}
        for adapter_id in list(self._on_model - set(wanted)):
            sm.detach(self.core.lm.model, adapter_id)
            self._on_model.discard(adapter_id)
        for adapter_id, info in wanted.items():
            if adapter_id not in self._on_model:
                self._load_onto_model(info)
        return sorted(self._on_model)

    def held_items(self, cube: str) -> frozenset[str]:
        """Ids of the memories the cube's adapters on the model hold well enough to
        leave out of a chat's prompt (see :attr:`AdapterInfo.held_items`)."""
        on_model = self._on_model
        return frozenset(
            item
            for a in self.adapters(cube)
            if a.id in on_model and a.attached and not a.stale
            for item in a.held_items
        )

    def merge(self, adapter_ids: Sequence[str], out: Path, drop_gates: bool = False) -> Path:
        """Merge adapters into a copy of the model saved at ``out`` (plain transformers).

        A gated adapter merges only with ``drop_gates`` (see
        :func:`memos.parametric.side_memory.merge`).
        """
        import torch
        from transformers import AutoModelForCausalLM

        from memos.parametric import side_memory as sm

        lm = self.core.lm
        infos = [self.info(a) for a in adapter_ids]
        gated = [info.id for info in infos if info.gate_thresholds]
        sm.refuse_gated(gated, drop_gates)  # before the model is loaded
        model = AutoModelForCausalLM.from_pretrained(
            str(lm.path), dtype=torch.float32, local_files_only=True
        )
        for info in infos:
            sm.attach(model, info.id, self._read(info))
        width = sm.merge(model, drop_gates=drop_gates)
        model.save_pretrained(str(out))
        lm.tokenizer.save_pretrained(str(out))
        now = self.core.clock.now()
        self.core.db.write(
            lambda s: store.log_event(
                s,
                now,
                "adapter.merge",
                details={
                    "adapters": list(adapter_ids),
                    "units": width,
                    "out": str(out),
                    "gates_dropped": bool(gated),
                },
            )
        )
        return out

    def remove(self, adapter_id: str, reason: str = "user") -> None:
        """Delete an adapter's file and registration (detaching it first)."""
        self.detach(adapter_id)
        event = store.EventSpec(
            self.core.clock.now(),
            "adapter.remove",
            reason=reason,
            from_tier="parametric",
            to_tier="plaintext",
            details={"adapter": adapter_id},
        )
        recorded = artifacts.remove(self.core.db, KIND, adapter_id, event)
        self.core.artifact_files.delete(recorded)

    def _load_onto_model(self, info: AdapterInfo) -> None:
        from memos.parametric import side_memory as sm

        if info.id in self._on_model:
            return
        sm.attach(self.core.lm.model, info.id, self._read(info))
        self._on_model.add(info.id)

    def _read(self, info: AdapterInfo) -> dict[int, sm.SideGLU]:
        import torch
        from safetensors import safe_open

        from memos.parametric import side_memory as sm

        lm = self.core.lm
        if info.model_fingerprint != lm.fingerprint:
            raise InvalidInputError(f"adapter {info.id} was trained on another model")
        digest = artifacts.digest_of(self.core.db, info.id)
        local = None
        if info.path:
            recorded = artifacts.relative_path(self.core.config.home, Path(info.path))
            local = self.core.artifact_files.fetch(recorded, digest)
        if local is None:
            warnings.warn(f"adapter file {info.path} is missing or altered; not used", stacklevel=3)
            raise InvalidInputError(f"adapter {info.id}: file missing or altered")
        path = local
        memories: dict[int, sm.SideGLU] = {}
        with safe_open(str(path), framework="pt") as handle:
            names = set(handle.keys())
            for layer in info.layers:
                G = handle.get_tensor(f"layer.{layer}.G")
                memory = sm.SideGLU(
                    G.shape[0], G.shape[1], float(handle.get_tensor(f"layer.{layer}.tau"))
                )
                with torch.no_grad():
                    for name in ("G", "K", "V"):
                        getattr(memory, name).copy_(handle.get_tensor(f"layer.{layer}.{name}"))
                if f"layer.{layer}.threshold" in names:  # absent: ungated
                    memory.threshold = float(handle.get_tensor(f"layer.{layer}.threshold"))
                memories[layer] = memory.to(lm.device)
        return memories

    def _set_meta(self, adapter_id: str, **changes: Any) -> None:
        artifacts.update_meta(self.core.db, adapter_id, **changes)


def _save(
    memories: dict[int, sm.SideGLU], path: Path, fingerprint: str, records: Sequence[MemoryRecord]
) -> tuple[str, int]:
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for layer, memory in memories.items():
        for name in ("G", "K", "V"):
            tensors[f"layer.{layer}.{name}"] = getattr(memory, name).detach().cpu().contiguous()
        tensors[f"layer.{layer}.tau"] = memory.tau.detach().cpu().reshape(1)
        if memory.gated:
            tensors[f"layer.{layer}.threshold"] = torch.tensor([memory.threshold])
    meta = {
        "fingerprint": fingerprint,
        "layers": json.dumps(sorted(memories)),
        "rank": str(next(iter(memories.values())).rank),
        "sources": json.dumps([[r.id, r.content_hash] for r in records]),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
        digest, size = file_digest(tmp), tmp.stat().st_size
    return digest, size


def _report(report: TrainReport) -> dict[str, Any]:
    data = asdict(report)
    data["layers"] = list(report.layers)
    return data


def _info(artifact: ArtifactRecord, home: Path, hold_min_recall: float) -> AdapterInfo:
    meta = artifact.meta
    path = artifacts.locate(home, artifact.path)
    check = meta.get("check") or {}
    recall = check.get("recall")
    held = list(check.get("passed", [])) if recall is not None and recall >= hold_min_recall else []
    return AdapterInfo(
        id=artifact.id,
        cube=artifact.cube,
        path=str(path) if path is not None else "",
        layers=list(meta.get("layers", [])),
        rank=int(meta.get("rank", 0)),
        items=int(meta.get("items", 0)),
        byte_size=artifact.byte_size,
        attached=bool(meta.get("attached")),
        stale=artifact.stale,
        stale_reason=artifact.stale_reason,
        model_fingerprint=artifact.model_fingerprint,
        created_at=artifact.created_at,
        training=dict(meta.get("training") or {}),
        question_recall=recall,
        held_items=held,
        gate_thresholds=[float(t) for t in meta.get("gate_thresholds", [])],
    )
