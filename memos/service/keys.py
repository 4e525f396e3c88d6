"""API keys: bound to one tenant, stored only as a hash, checked on every request.

A key reads ``memos_<prefix>_<secret>``: the prefix (12 hex characters) finds
its row, the SHA-256 of the whole key is compared in constant time. The key
itself is shown once, by :func:`create_key`, and never stored or logged.
The service checks keys through a :class:`KeyCache`, which reads the row again
whenever the database says a key was made or revoked, so a revocation holds on
the next request in every worker and every process.

Scopes: ``read`` (search, list, get, export), ``write`` (add, update, delete,
restore, decay) and ``admin`` (purge, import, scheduler, keys). ``admin``
implies the other two, ``write`` implies ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from memos.errors import AuthError, ForbiddenError, InvalidInputError, UnknownKeyError
from memos.store import keys as rows
from memos.store.changes import ChangeFeed
from memos.store.db import Database
from memos.validation import check_id, check_tenant, string_problem

SCOPES = ("read", "write", "admin")
_IMPLIED = {"admin": {"admin", "write", "read"}, "write": {"write", "read"}, "read": {"read"}}
_PREFIX_HEX = 12
_MISSING = "missing API key: send 'Authorization: Bearer <key>'"


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listed (never the key itself)."""

    id: str
    tenant: str
    name: str | None
    scopes: tuple[str, ...]
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        """Whether the key's scopes include (or imply) ``scope``."""
        return any(scope in _IMPLIED[s] for s in self.scopes)

    def require(self, scope: str) -> None:
        """``ForbiddenError`` unless the key allows ``scope``."""
        if not self.allows(scope):
            raise ForbiddenError(f"this API key lacks the {scope!r} scope")

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "scopes": list(self.scopes),
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"read,write"`` as a checked tuple of scopes."""
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [s for s in scopes if s not in SCOPES]
    if not scopes or bad:
        raise InvalidInputError(f"scopes {text!r} are invalid; allowed: {', '.join(SCOPES)}")
    return scopes


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(
    db: Database, tenant: str, scopes: tuple[str, ...], now: datetime, name: str | None = None
) -> tuple[str, KeyInfo]:
    """A new key for ``tenant``: (the key, shown only now; its stored info)."""
    check_tenant(tenant)
    if name is not None and (string_problem(name) or len(name) > 200):
        raise InvalidInputError("a key name must be valid text of at most 200 characters")
    scopes = parse_scopes(",".join(scopes))
    prefix = secrets.token_hex(_PREFIX_HEX // 2)
    key = f"memos_{prefix}_{secrets.token_urlsafe(32)}"
    row = rows.StoredKey(
        id=str(uuid.uuid4()),
        tenant=tenant,
        name=name,
        scopes=",".join(scopes),
        prefix=prefix,
        key_hash=_hash(key),
        created_at=now,
        revoked_at=None,
    )
    return key, _info(rows.insert_key(db, row))


def list_keys(db: Database, tenant: str | None = None) -> list[KeyInfo]:
    """Every key (of one tenant), oldest first."""
    return [_info(row) for row in rows.key_rows(db, tenant)]


def revoke_key(db: Database, key_id: str, now: datetime) -> KeyInfo:
    """Revoke a key (from the next request on, in every worker)."""
    check_id(key_id, "API key", UnknownKeyError)
    return _info(rows.revoke(db, key_id, now))


def authenticate(db: Database, presented: str | None) -> KeyInfo:
    """The live key ``presented`` is; ``AuthError`` when missing, unknown or revoked.

    The error never repeats the key.
    """
    if not presented:
        raise AuthError(_MISSING)
    prefix = key_prefix(presented)
    row = rows.key_by_prefix(db, prefix) if prefix else None
    # Compare even when no row matched, so timing tells nothing about prefixes.
    expected = row.key_hash if row is not None else _hash("memos_none_" + presented)
    matches = hmac.compare_digest(expected, _hash(presented))
    if row is None or not matches:
        raise AuthError("invalid API key")
    if row.revoked_at is not None:
        raise AuthError("this API key was revoked")
    return _info(row)


class KeyCache:
    """Keys already checked, by the SHA-256 of the presented key, valid while
    nothing changed: a request costs no database round trip, and a revocation
    holds from the very next request in every worker.

    The cache is stamped with the change feed's version (see
    :mod:`memos.store.changes`). When the version moves (a write anywhere), the
    keys' revision (:func:`memos.store.keys.keys_revision`, one small read) says
    whether a key was made or revoked; only then is the cache dropped. Where the
    feed is not synchronous (PostgreSQL: a notification lands a moment after
    its commit), the keys' revision is read on every request instead, so a
    revocation can never be missed by the request right after it.
    """

    def __init__(self, db: Database, feed: ChangeFeed, size: int = 10_000) -> None:
        self.db = db
        self.feed = feed
        self.size = size
        self._lock = threading.Lock()
        self._keys: dict[str, KeyInfo] = {}
        self._version = -1
        self._revision: tuple[int, int] | None = None

    def authenticate(self, presented: str | None) -> KeyInfo:
        """As :func:`authenticate`, from the cache when nothing changed."""
        if not presented:
            raise AuthError(_MISSING)
        self._refresh()
        digest = _hash(presented)
        found = self._keys.get(digest)
        if found is not None:
            return found
        info = authenticate(self.db, presented)
        with self._lock:
            if len(self._keys) >= self.size:
                self._keys.clear()
            self._keys[digest] = info
        return info

    def cached(self, presented: str | None) -> KeyInfo | None:
        """The key's info when the cache can answer with no database read, else
        ``None`` (then call :meth:`authenticate`, off the event loop)."""
        if not presented or not self.feed.synchronous or self.feed.version() != self._version:
            return None
        return self._keys.get(_hash(presented))

    def _refresh(self) -> None:
        version = self.feed.version()
        if version == self._version and self.feed.synchronous:
            return
        revision = rows.keys_revision(self.db)
        with self._lock:
            if revision != self._revision:
                self._keys.clear()
                self._revision = revision
            self._version = version


def key_prefix(presented: str) -> str:
    """The prefix a presented key names (``""`` when it is not shaped like a key)."""
    parts = presented.split("_")
    prefix = parts[1] if len(parts) >= 3 and parts[0] == "memos" else ""
    return prefix if len(prefix) == _PREFIX_HEX and prefix.isalnum() and prefix.isascii() else ""


def _info(row: rows.StoredKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        scopes=tuple(row.scopes.split(",")),
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
