"""The append-only event log: who did what, when and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memos.store.models import (
    Event,
)


@dataclass(frozen=True)
class LoggedEvent:
    """One event of the log as read back."""

    at: datetime
    kind: str
    details: dict[str, Any]


def events_of(session: Session, item_id: str, kinds: tuple[str, ...]) -> list[LoggedEvent]:
    """An item's events of these kinds, oldest first."""
    rows = session.scalars(
        select(Event)
        .where(Event.item_id == item_id, Event.kind.in_(kinds))
        .order_by(Event.at, Event.pk)
    )
    return [LoggedEvent(row.at, row.kind, dict(row.details or {})) for row in rows]


def log_event(
    session: Session,
    now: datetime,
    kind: str,
    *,
    cube_pk: int | None = None,
    item_id: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    from_tier: str | None = None,
    to_tier: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event to the audit log."""
    session.add(
        Event(
            at=now,
            cube_pk=cube_pk,
            item_id=item_id,
            kind=kind,
            actor=actor,
            reason=reason,
            from_tier=from_tier,
            to_tier=to_tier,
            details=details or {},
        )
    )


@dataclass(frozen=True)
class EventSpec:
    """An event to log: what happened, when, and between which tiers."""

    at: datetime
    kind: str
    reason: str | None = None
    from_tier: str | None = None
    to_tier: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def log_spec(session: Session, spec: EventSpec, cube_pk: int | None = None) -> None:
    """Append the event ``spec`` describes."""
    log_event(
        session,
        spec.at,
        spec.kind,
        cube_pk=cube_pk,
        reason=spec.reason,
        from_tier=spec.from_tier,
        to_tier=spec.to_tier,
        details=spec.details,
    )
