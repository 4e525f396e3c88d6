"""Schema revisions: bring a database to head, report where it stands.

Wraps Alembic programmatically. A database written by a newer memos (a
revision this install does not know) is refused with ``SchemaTooNewError``.
Opening a database already at :data:`HEAD` reads one row and never imports
Alembic (it costs a CLI command about 0.2 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from filelock import FileLock
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from memos.errors import SchemaTooNewError, StoreError
from memos.store.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

_PG_LOCK_KEY = 0x6D656D6F73  # "memos"
#: The newest revision in ``migrations/versions`` (a test checks they agree).
HEAD = "0004"


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands relative to this install's migrations.

    ``newer`` is true when the database's revision is unknown here: a newer
    memos wrote it.
    """

    current: str | None
    head: str
    newer: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config(db: Database) -> Config:
    """An Alembic config pointing at the packaged ``memos.migrations`` scripts."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("memos.migrations")))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def head_revision(db: Database) -> str:
    """The newest revision this install knows (read from the migration scripts)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
    assert head is not None
    return head


def status(db: Database) -> SchemaStatus:
    """Current and head revision of ``db`` (``current`` is None when empty)."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    try:
        _refuse_unknown(alembic_config(db), current)
    except SchemaTooNewError:
        return SchemaStatus(current=current, head=head_revision(db), newer=True)
    return SchemaStatus(current=current, head=head_revision(db))


def upgrade(db: Database) -> SchemaStatus:
    """Bring ``db`` to head (idempotent, safe when several processes race)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config(db)
    with _migration_lock(db), db.engine.begin() as conn:
        _lock_pg(db, conn)
        _refuse_unknown(cfg, MigrationContext.configure(conn).get_current_revision())
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return status(db)


def ensure_current(db: Database) -> None:
    """Upgrade ``db`` when behind head; refuse it when it is ahead.

    Raises:
        SchemaTooNewError: a newer memos wrote the database.
        StoreError: the database cannot be read (for example, not a database file).
    """
    try:
        if _stored_revision(db) == HEAD:
            return
        state = status(db)
        _refuse_unknown(alembic_config(db), state.current)
        if not state.up_to_date:
            upgrade(db)
    except DBAPIError as exc:
        where = make_url(db.url).render_as_string(hide_password=True)
        raise StoreError(f"cannot open the database {where}: {exc.orig}") from None


def _stored_revision(db: Database) -> str | None:
    """The revision row, read without Alembic (None when there is none yet)."""
    try:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):  # no table yet
        return None


def _refuse_unknown(cfg: Config, current: str | None) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    if current is None:
        return
    try:
        known = ScriptDirectory.from_config(cfg).get_revision(current)
    except CommandError:
        known = None
    if known is None:
        head = ScriptDirectory.from_config(cfg).get_current_head()
        raise SchemaTooNewError(
            f"database schema is at revision {current!r}, which this memos does not know "
            f"(its newest is {head!r}); it was written by a newer memos: upgrade memos"
        )


@contextmanager
def _migration_lock(db: Database) -> Iterator[None]:
    if db.sqlite_path is None:
        yield
        return
    with FileLock(str(db.sqlite_path) + ".migrate.lock", timeout=120):
        yield


def _lock_pg(db: Database, conn: Connection) -> None:
    if db.dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
