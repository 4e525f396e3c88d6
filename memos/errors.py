"""Typed errors raised by memos.

Library code raises these; only the CLI and the HTTP layer turn them into exit
codes or status codes. Every error leaves what is already stored untouched.
"""

from __future__ import annotations


class MemosError(Exception):
    """Base class of every error memos raises on purpose."""


class ConfigError(MemosError):
    """A configuration value is invalid (names the value and what is allowed)."""


class InvalidInputError(MemosError):
    """Caller input is malformed."""


class InvalidTextError(InvalidInputError):
    """Text is empty, not a string, not valid Unicode, or contains NUL."""


class TextTooLongError(InvalidTextError):
    """Text exceeds the configured limit (use ``add_document`` to chunk it)."""


class MetadataTooLargeError(InvalidInputError):
    """Metadata exceeds ``memos.validation.METADATA_MAX_BYTES`` as JSON (64 KiB)."""


class InvalidFilterError(InvalidInputError):
    """A search or list filter names an unknown field or holds a bad value."""


class NotFoundError(MemosError):
    """A named thing does not exist."""


class UnknownItemError(NotFoundError):
    """No memory item has this id (or it was purged)."""


class UnknownCubeError(NotFoundError):
    """No cube has this name."""


class UnknownJobError(NotFoundError):
    """No job has this id."""


class UnknownKeyError(NotFoundError):
    """No API key has this id."""


class AuthError(MemosError):
    """A service request has no API key, or an unknown or revoked one."""


class ForbiddenError(MemosError):
    """The API key lacks the scope the request needs."""


class DuplicateError(MemosError):
    """The change would store text that already exists in the cube."""


class EmbedderError(MemosError):
    """The embedder failed or returned unusable vectors (NaN, wrong shape)."""


class StoreError(MemosError):
    """The database could not be opened or used."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer memos (unknown schema revision)."""


class ImportFormatError(InvalidInputError):
    """A JSONL export file is malformed; nothing from it was stored."""


class PathError(InvalidInputError):
    """A file path cannot be written: it is a folder, or an export target inside the
    memos home (where it could overwrite the store)."""


class EvalDataError(InvalidInputError):
    """A benchmark data file is not in the expected format."""


class UnknownSnapshotError(NotFoundError):
    """No snapshot has this id."""


class UnknownAdapterError(NotFoundError):
    """No adapter has this id."""


class SnapshotError(MemosError):
    """A snapshot file is missing, damaged, or made for another model."""


class IndexFileError(MemosError):
    """An index file is missing, truncated, altered or built for something else."""


class SchedulerBusyError(MemosError):
    """Another scheduler run holds the lock."""


class IndexRebuiltWarning(UserWarning):
    """An index file was missing, corrupt or stale and has been rebuilt."""
