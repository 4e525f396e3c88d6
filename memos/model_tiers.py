"""The model tiers as one part: chat with memory, KV snapshots, adapters.

:class:`ModelTiers` is composed into the façade (:class:`memos.client.Memos`)
beside the plaintext reader and writer. It chooses which memories each tier
gets (the caller's items, the best for a query through the reader, or the
newest) and hands them to the tiers, which take only the core. Nothing here
loads torch until a tier is first used. Cube names are the stored ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from memos.errors import InvalidInputError
from memos.filters import FilterArg, SearchFilter
from memos.parametric.config import TrainConfig
from memos.records import AdapterInfo, MemoryRecord, Reply, SnapshotInfo

if TYPE_CHECKING:
    from memos.activation.tier import ActivationTier
    from memos.core import Core
    from memos.fields import Progress, TrainOptions
    from memos.lm import LanguageModel
    from memos.parametric.tier import ParametricTier
    from memos.plaintext.reader import Reader

#: Most memories a snapshot is chosen from when none are given.
SNAPSHOT_CANDIDATES = 500


class ModelTiers:
    """Chat, snapshots and adapters of one store (torch loads on first use)."""

    def __init__(self, core: Core, reader: Reader) -> None:
        self.core = core
        self.reader = reader
        self._activation: ActivationTier | None = None
        self._parametric: ParametricTier | None = None
        self._lock = threading.Lock()

    @property
    def lm(self) -> LanguageModel:
        """The language model, loaded on first use."""
        return self.core.lm

    @property
    def activation(self) -> ActivationTier:
        """The activation tier (KV snapshots)."""
        with self._lock:
            if self._activation is None:
                from memos.activation.tier import ActivationTier

                self._activation = ActivationTier(self.core)
            return self._activation

    @property
    def parametric(self) -> ParametricTier:
        """The parametric tier (side-GLU adapters)."""
        with self._lock:
            if self._parametric is None:
                from memos.parametric.tier import ParametricTier

                self._parametric = ParametricTier(self.core)
            return self._parametric

    def chat(
        self,
        message: str,
        cube: str,
        history: Sequence[Mapping[str, str]],
        max_new_tokens: int,
        use_snapshot: bool,
        instructions: str = "",
        on_text: Callable[[str], None] | None = None,
    ) -> Reply:
        """Answer with the cube's memories: from its newest valid KV snapshot when
        there is one (no prefill of the memories), else from plaintext context
        (see :func:`memos.chat.chat`)."""
        from memos.chat import chat, chat_turns

        # bad arguments and an unknown cube are errors before the model loads
        chat_turns(message, history, max_new_tokens, use_snapshot, instructions)
        self.core.cube(cube)
        return chat(
            self.lm,
            self.activation,
            self.parametric,
            lambda text, held: self.reader.context(
                text, 512, cube, 20, SearchFilter(exclude_ids=tuple(held))
            ),
            message,
            cube=cube,
            history=history,
            max_new_tokens=max_new_tokens,
            use_snapshot=use_snapshot,
            instructions=instructions,
            on_text=on_text,
        )

    def snapshot_items(
        self, cube: str, query: str | None, items: Sequence[MemoryRecord] | None
    ) -> list[MemoryRecord]:
        """What a snapshot of ``cube`` holds: the given items, the best for
        ``query``, or the newest; ``InvalidInputError`` when there are none."""
        if items is not None:
            chosen = list(items)
        elif query:
            chosen = [hit.item for hit in self.reader.search(query, cube, 100, None, "hybrid")]
        else:
            chosen = self.reader.list(cube, None, SNAPSHOT_CANDIDATES, 0)
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to snapshot")
        return chosen

    def build_snapshot(
        self,
        cube: str,
        query: str | None,
        items: Sequence[MemoryRecord] | None,
        max_tokens: int,
        dtype: str,
    ) -> SnapshotInfo:
        """Snapshot the KV cache of a block of memories (see :meth:`snapshot_items`).

        The same item given twice is snapshotted once.
        """
        chosen = self.snapshot_items(cube, query, items)
        return self.activation.build(cube, chosen, max_tokens=max_tokens, dtype=dtype)

    def training_items(
        self, cube: str, items: Sequence[MemoryRecord] | None, filter: FilterArg
    ) -> list[MemoryRecord]:
        """What an adapter of ``cube`` learns: the given items, or the cube's items
        matching ``filter``; ``InvalidInputError`` when there are none."""
        chosen = list(items) if items is not None else list(self.reader.iterate(cube, filter, 500))
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to consolidate")
        return chosen

    def consolidate(
        self,
        cube: str,
        items: Sequence[MemoryRecord] | None,
        filter: FilterArg,
        progress: Progress | None,
        options: TrainOptions,
    ) -> AdapterInfo:
        """Train a side-GLU adapter on memories (see :meth:`training_items`)."""
        config = TrainConfig.from_options(options)
        chosen = self.training_items(cube, items, filter)
        return self.parametric.consolidate(cube, chosen, config=config, progress=progress)
