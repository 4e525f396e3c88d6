"""Retention curves over time, replayed from the event log (``memos plot retention``).

An item's curve starts when it was stored, at its first stability; each
``recall`` event restarts it at R = 1 with the stability the recall gave it
(a restore restarts it too). Recalls are marked on the curve where they
happened, at the retention they came at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from memos import store
from memos.clock import as_utc
from memos.records import State
from memos.retention import curve_value, days_between

if TYPE_CHECKING:
    from memos.core import Core

MAX_ITEMS = 20


@dataclass(frozen=True)
class RetentionCurve:
    """Sampled retention of one item, with its recalls."""

    item_id: str
    label: str
    times: list[datetime]
    values: list[float]
    recalls: list[tuple[datetime, float]]


def retention_curve(
    core: Core, item_id: str, until: datetime, samples: int = 400
) -> RetentionCurve:
    """Replay one item's retention from when it was stored until ``until``."""
    core.recalls.flush()
    policy = core.config.retention
    with core.db.read() as session:
        item = store.record_of(session, store.item_by_id(session, item_id))
        events = store.events_of(session, item_id, ("recall", "restore"))
    recalls = [e for e in events if e.kind == "recall"]
    stability = float(recalls[0].details["stability_before"]) if recalls else item.stability
    starts: list[tuple[datetime, float]] = [(item.created_at, stability)]
    marks = []
    for event in events:
        at = as_utc(event.at)
        assert at is not None
        if event.kind == "recall":
            stability = float(event.details["stability"])
            marks.append((at, float(event.details["retention"])))
        starts.append((at, stability))
    span = max(days_between(item.created_at, until), 1e-6)
    times, values = [], []
    segment = 0
    for n in range(samples + 1):
        t = item.created_at + timedelta(days=span * n / samples)
        while segment + 1 < len(starts) and starts[segment + 1][0] <= t:
            segment += 1
        start, s = starts[segment]
        times.append(t)
        values.append(1.0 if item.pinned else curve_value(policy.curve, days_between(start, t), s))
    label = item.text if len(item.text) <= 40 else item.text[:39] + "…"
    return RetentionCurve(item_id, label, times, values, marks)


def plot_retention(core: Core, item_ids: list[str], out: Path, horizon_days: float = 30.0) -> Path:
    """Draw the retention curves of ``item_ids`` (up to ``MAX_ITEMS``) into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.dates import AutoDateFormatter, AutoDateLocator, date2num

    until = core.clock.now() + timedelta(days=horizon_days)
    curves = [retention_curve(core, i, until) for i in item_ids[:MAX_ITEMS]]
    policy = core.config.retention
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for curve in curves:
        (line,) = ax.plot(date2num(curve.times), curve.values, label=curve.label, linewidth=1.4)
        if curve.recalls:
            ax.scatter(
                date2num([t for t, _ in curve.recalls]),
                [r for _, r in curve.recalls],
                color=line.get_color(),
                marker="o",
                s=28,
                zorder=3,
            )
    thresholds = (
        (State.WARM, policy.warm_below),
        (State.COLD, policy.cold_below),
        (State.ARCHIVED, policy.archive_below),
        (State.FORGOTTEN, policy.forget_below),
    )
    for name, level in thresholds:
        ax.axhline(level, color="grey", linestyle="--", linewidth=0.7)
        ax.annotate(
            f"{name} < {level:g}",
            (0.995, level),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
            color="grey",
        )
    ax.axvline(float(date2num(core.clock.now())), color="black", linewidth=0.8, linestyle=":")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(AutoDateFormatter(locator))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("retention R")
    ax.set_title(f"Retention ({policy.curve} curve); dots are recalls, dotted line is now")
    ax.legend(fontsize=7, loc="center right")
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
