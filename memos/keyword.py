"""The keyword channel: the database's own full-text search.

SQLite uses an FTS5 table (``items_fts``, rowid = item pk) ranked by its
built-in BM25; PostgreSQL uses a GIN index on ``to_tsvector('english', text)``
ranked by ``ts_rank_cd`` (cover density, not BM25: documented). Keeping the
keyword index in the database makes it transactional with the items, so it
never needs rebuilding and is shared by every process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import (
    ColumnElement,
    Float,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from memos.models import Item

_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 32
# Words too common to help ranking; dropping them keeps OR-queries cheap.
STOPWORDS = frozenset(
    """
    a about above after again all am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only
    or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would
    you your yours yourself yourselves
    """.split()
)

_fts = table("items_fts", column("rowid"), column("text"))


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased content words of ``query`` (stop words dropped)."""
    terms: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word not in STOPWORDS and word not in terms and (len(word) > 1 or word.isdigit()):
            terms.append(word)
    return terms[:_MAX_TERMS]


def index_items(session: Session, rows: Iterable[tuple[int, str]]) -> None:
    """Add ``(pk, text)`` rows to the keyword index (SQLite; PostgreSQL indexes itself)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    payload = [{"pk": pk, "text": body} for pk, body in rows]
    if payload:
        session.execute(text("INSERT INTO items_fts(rowid, text) VALUES (:pk, :text)"), payload)


def unindex_items(session: Session, pks: Iterable[int]) -> None:
    """Remove items from the keyword index (SQLite; PostgreSQL indexes itself)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    payload = [{"pk": pk} for pk in pks]
    if payload:
        session.execute(text("DELETE FROM items_fts WHERE rowid = :pk"), payload)


def search(
    session: Session, query: str, where: ColumnElement[bool], limit: int
) -> list[tuple[int, float]]:
    """Best ``limit`` (item pk, score) pairs for ``query`` among items matching ``where``.

    Scores are higher-is-better (negated BM25 on SQLite, ``ts_rank_cd`` on
    PostgreSQL). A query with no content words returns nothing.
    """
    terms = query_terms(query)
    if not terms:
        return []
    if session.get_bind().dialect.name == "sqlite":
        return _search_sqlite(session, terms, where, limit)
    return _search_postgres(session, terms, where, limit)


def _search_sqlite(
    session: Session, terms: list[str], where: ColumnElement[bool], limit: int
) -> list[tuple[int, float]]:
    match = " OR ".join(f'"{term}"' for term in terms)
    score = literal_column("bm25(items_fts)", Float)
    stmt = (
        select(Item.pk, score)
        .select_from(_fts.join(Item, Item.pk == _fts.c.rowid))
        .where(literal_column("items_fts").op("MATCH")(bindparam("match", match)))
        .where(where)
        .order_by(score)
        .limit(limit)
    )
    return [(int(pk), -float(s)) for pk, s in session.execute(stmt)]


def _search_postgres(
    session: Session, terms: list[str], where: ColumnElement[bool], limit: int
) -> list[tuple[int, float]]:
    english: ColumnElement[str] = literal_column("'english'")
    doc = func.to_tsvector(english, Item.text)  # the expression the GIN index holds
    query = func.to_tsquery(english, bindparam("tsq", " | ".join(terms)))
    score = func.ts_rank_cd(doc, query, type_=Float)
    stmt = (
        select(Item.pk, score)
        .where(doc.op("@@")(query))
        .where(where)
        .order_by(score.desc())
        .limit(limit)
    )
    return [(int(pk), float(s)) for pk, s in session.execute(stmt)]
