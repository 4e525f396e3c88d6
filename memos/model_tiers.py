"""The model tiers and the scheduler as the façade offers them.

:class:`ModelTiers` is the part of :class:`memos.client.Memos` that reaches the
language model: chat with memory, KV snapshots, consolidation into adapters and
the background scheduler. The façade chooses which memories each tier gets
(search, listing or the caller's items); the tiers themselves take only the
core. Nothing here loads torch until a tier is first used.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memos.activation.snapshot import DEFAULT_DTYPE
from memos.errors import InvalidInputError
from memos.parametric.config import TrainConfig
from memos.plaintext.filters import SearchFilter
from memos.records import ContextBlock, MemoryRecord, SearchHit

if TYPE_CHECKING:
    from collections.abc import Iterator

    from memos.activation.tier import ActivationTier, SnapshotInfo
    from memos.chat import Reply
    from memos.core import Core
    from memos.lm import LanguageModel
    from memos.parametric.tier import AdapterInfo, ParametricTier
    from memos.plaintext.indexes import Progress
    from memos.scheduler.background import BackgroundScheduler
    from memos.scheduler.runner import Scheduler

DEFAULT_CUBE = "default"


class ModelTiers:
    """Chat, snapshots, consolidation and the background scheduler of a façade.

    The host class provides ``core``, ``scheduler``, ``search``, ``list``,
    ``iterate`` and ``context``.
    """

    core: Core
    scheduler: Scheduler

    if TYPE_CHECKING:

        def search(self, query: str, *, cube: str = ..., k: int = ...) -> list[SearchHit]: ...
        def list(self, *, cube: str = ..., limit: int = ...) -> list[MemoryRecord]: ...
        def iterate(
            self, *, cube: str = ..., filter: SearchFilter | Mapping[str, Any] | None = ...
        ) -> Iterator[MemoryRecord]: ...
        def context(
            self,
            query: str,
            *,
            cube: str = ...,
            filter: SearchFilter | Mapping[str, Any] | None = ...,
        ) -> ContextBlock: ...

    def __init__(self, core: Core) -> None:
        self.core = core
        self._activation: ActivationTier | None = None
        self._parametric: ParametricTier | None = None
        self._background: BackgroundScheduler | None = None
        self._tiers_lock = threading.Lock()

    @property
    def lm(self) -> LanguageModel:
        """The language model, loaded on first use."""
        return self.core.lm

    @property
    def activation(self) -> ActivationTier:
        """The activation tier (KV snapshots); torch loads on first use."""
        with self._tiers_lock:
            if self._activation is None:
                from memos.activation.tier import ActivationTier

                self._activation = ActivationTier(self.core)
            return self._activation

    @property
    def parametric(self) -> ParametricTier:
        """The parametric tier (side-GLU adapters); torch loads on first use."""
        with self._tiers_lock:
            if self._parametric is None:
                from memos.parametric.tier import ParametricTier

                self._parametric = ParametricTier(self.core)
            return self._parametric

    # -- generation and snapshots ------------------------------------------------

    def chat(
        self,
        message: str,
        *,
        cube: str = DEFAULT_CUBE,
        history: Sequence[dict[str, str]] = (),
        max_new_tokens: int = 64,
        use_snapshot: bool = True,
    ) -> Reply:
        """Answer with the cube's memories: from its newest valid KV snapshot when
        there is one (no prefill of the memories), else from plaintext context."""
        from memos.chat import chat

        return chat(
            self.lm,
            self.activation,
            self.parametric,
            lambda text, held: self.context(
                text, cube=cube, filter=SearchFilter(exclude_ids=tuple(held))
            ),
            message,
            cube=cube,
            history=history,
            max_new_tokens=max_new_tokens,
            use_snapshot=use_snapshot,
        )

    def build_snapshot(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        query: str | None = None,
        items: Sequence[MemoryRecord] | None = None,
        max_tokens: int = 1024,
        dtype: str = DEFAULT_DTYPE,
    ) -> SnapshotInfo:
        """Snapshot the KV cache of a block of memories (the given items, the best
        for ``query``, or the newest), within ``max_tokens``.

        The same item given twice is snapshotted once.
        """
        if items is not None:
            chosen = list(items)
        elif query:
            chosen = [hit.item for hit in self.search(query, cube=cube, k=100)]
        else:
            chosen = self.list(cube=cube, limit=500)
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to snapshot")
        return self.activation.build(cube, chosen, max_tokens=max_tokens, dtype=dtype)

    def consolidate(
        self,
        cube: str = DEFAULT_CUBE,
        *,
        items: Sequence[MemoryRecord] | None = None,
        filter: SearchFilter | Mapping[str, Any] | None = None,
        progress: Progress | None = None,
        **train_options: Any,
    ) -> AdapterInfo:
        """Train a side-GLU adapter on memories (given, or the cube's matching ``filter``).

        ``train_options`` are :class:`memos.parametric.config.TrainConfig` fields
        (``rank``, ``layers``, ``steps``, ``lr``, ``locality_weight``, ...).
        Attach the result with ``mem.parametric.attach(info.id)``.
        """
        config = TrainConfig(**train_options)
        chosen = list(items) if items is not None else list(self.iterate(cube=cube, filter=filter))
        if not chosen:
            raise InvalidInputError(f"cube {cube!r} has no memories to consolidate")
        return self.parametric.consolidate(cube, chosen, config=config, progress=progress)

    def start_scheduler(
        self, every_minutes: float | None = None, *, cube: str | None = None
    ) -> BackgroundScheduler:
        """Run the tier scheduler in a background thread every ``every_minutes``
        (default ``config.scheduler.interval_minutes``); :meth:`close` stops it."""
        with self._tiers_lock:
            if self._background is not None and self._background.running:
                raise InvalidInputError("the background scheduler is already running")
            minutes = every_minutes or self.core.config.scheduler.interval_minutes
            from memos.scheduler.background import BackgroundScheduler

            self._background = BackgroundScheduler(self.scheduler, minutes * 60, cube).start()
            return self._background

    def stop_scheduler(self) -> None:
        """Stop the background scheduler, if running (a run in progress finishes)."""
        if self._background is not None:
            self._background.stop()
