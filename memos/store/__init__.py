"""The system of record: engine and sessions, models, schema, row operations,
derived-artifact registry and export/import.

Row operations (one session, no commit of their own) live in ``cubes``,
``items``, ``vectors``, ``events`` and ``conversion`` and are re-exported here,
so callers write ``store.item_by_id(session, ...)``.
"""

from memos.store.conversion import (
    ITEM_FIELDS,
    RetentionFigures,
    item_values,
    record_of,
    records_by_pk,
    to_record,
    to_version,
)
from memos.store.cubes import bump_revision, cube_by_name, cube_names, ensure_cube
from memos.store.events import EventSpec, log_event, log_spec
from memos.store.items import (
    NewItem,
    insert_items,
    item_by_id,
    live_by_hash,
    mark_artifacts_stale,
    move_state,
    purge_item,
    rewrite_item,
    set_deleted,
    set_restored,
    versions_of,
)
from memos.store.stats import CubeCounts, cube_counts
from memos.store.vectors import cached_vectors, count_embedded, save_vectors

__all__ = [
    "ITEM_FIELDS",
    "CubeCounts",
    "EventSpec",
    "NewItem",
    "RetentionFigures",
    "bump_revision",
    "cached_vectors",
    "count_embedded",
    "cube_by_name",
    "cube_counts",
    "cube_names",
    "ensure_cube",
    "insert_items",
    "item_by_id",
    "item_values",
    "live_by_hash",
    "log_event",
    "log_spec",
    "mark_artifacts_stale",
    "move_state",
    "purge_item",
    "record_of",
    "records_by_pk",
    "rewrite_item",
    "save_vectors",
    "set_deleted",
    "set_restored",
    "to_record",
    "to_version",
    "versions_of",
]
