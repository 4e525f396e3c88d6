"""The system of record: engine and sessions, models, schema, row operations,
derived-artifact registry and export/import rows.

SQL lives only in this package: every other part asks it through the
functions re-exported here (one session each, no commit of their own, unless
they take the :class:`Database`), so callers write
``store.item_by_id(session, ...)``.
"""

from sqlalchemy.orm import Session

from memos.store.conversion import (
    ITEM_FIELDS,
    RetentionFigures,
    item_values,
    record_of,
    records_by_pk,
    to_record,
    to_version,
)
from memos.store.cubes import (
    CubeRef,
    bump_revision,
    cube_by_name,
    cube_name_of,
    cube_names,
    cube_pk_of,
    cube_ref,
    cube_refs,
    cube_revision,
    ensure_cube,
)
from memos.store.events import EventSpec, LoggedEvent, events_of, log_event, log_spec
from memos.store.filters import filter_clause
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
from memos.store.reads import (
    filtered_pks,
    ids_in_cube,
    ids_present,
    item_tenant,
    list_records,
    live_ids,
    records_after,
    records_by_ids,
    searchable_records,
)
from memos.store.stats import CubeCounts, cube_counts
from memos.store.vectors import cached_vectors, count_embedded, save_vectors

__all__ = [
    "ITEM_FIELDS",
    "CubeCounts",
    "CubeRef",
    "EventSpec",
    "LoggedEvent",
    "NewItem",
    "RetentionFigures",
    "Session",
    "bump_revision",
    "cached_vectors",
    "count_embedded",
    "cube_by_name",
    "cube_counts",
    "cube_name_of",
    "cube_names",
    "cube_pk_of",
    "cube_ref",
    "cube_refs",
    "cube_revision",
    "ensure_cube",
    "events_of",
    "filter_clause",
    "filtered_pks",
    "ids_in_cube",
    "ids_present",
    "insert_items",
    "item_by_id",
    "item_tenant",
    "item_values",
    "list_records",
    "live_by_hash",
    "live_ids",
    "log_event",
    "log_spec",
    "mark_artifacts_stale",
    "move_state",
    "purge_item",
    "record_of",
    "records_after",
    "records_by_ids",
    "records_by_pk",
    "rewrite_item",
    "save_vectors",
    "searchable_records",
    "set_deleted",
    "set_restored",
    "to_record",
    "to_version",
    "versions_of",
]
