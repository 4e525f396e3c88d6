"""memos: agent memory in three tiers, with forgetting, local and offline.

Quick start::

    from memos import Memos

    with Memos() as mem:
        mem.add("Alice prefers green tea", cube="alice")
        for hit in mem.search("what does Alice drink?", cube="alice"):
            print(hit.score, hit.item.text)

Heavy backends (sentence-transformers, FAISS, torch) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memos.clock import Clock, ManualClock, SystemClock
from memos.config import MemosConfig, SchedulerPolicy
from memos.errors import (
    ConfigError,
    DuplicateError,
    EmbedderError,
    EvalDataError,
    ImportFormatError,
    InvalidFilterError,
    InvalidInputError,
    InvalidTextError,
    MemosError,
    MetadataTooLargeError,
    NotFoundError,
    PathError,
    SchemaTooNewError,
    StoreError,
    TextTooLongError,
    UnknownCubeError,
    UnknownItemError,
)
from memos.records import (
    ContextBlock,
    CubeStats,
    ImportReport,
    MemoryRecord,
    MemoryVersion,
    ScoreParts,
    SearchHit,
)
from memos.retention import RetentionPolicy

if TYPE_CHECKING:
    from memos.client import Memos
    from memos.filters import SearchFilter
    from memos.plaintext.embedder import Embedder, SentenceTransformerEmbedder
    from memos.scheduler.runner import SchedulerBusyError

__version__ = "0.1.0"

_LAZY = {
    "SchedulerBusyError": "memos.scheduler.runner",
    "Memos": "memos.client",
    "Embedder": "memos.plaintext.embedder",
    "SentenceTransformerEmbedder": "memos.plaintext.embedder",
    "SearchFilter": "memos.filters",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memos' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Clock",
    "ConfigError",
    "ContextBlock",
    "CubeStats",
    "DuplicateError",
    "Embedder",
    "EmbedderError",
    "EvalDataError",
    "ImportFormatError",
    "ImportReport",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidTextError",
    "ManualClock",
    "MemoryRecord",
    "MemoryVersion",
    "Memos",
    "MemosConfig",
    "MemosError",
    "MetadataTooLargeError",
    "NotFoundError",
    "PathError",
    "RetentionPolicy",
    "SchedulerBusyError",
    "SchedulerPolicy",
    "SchemaTooNewError",
    "ScoreParts",
    "SearchFilter",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "StoreError",
    "SystemClock",
    "TextTooLongError",
    "UnknownCubeError",
    "UnknownItemError",
    "__version__",
]
