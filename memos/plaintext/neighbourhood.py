"""Where each item sits: its session, its neighbours, who said it and when.

Evidence often sits next to what matches: the answer follows the question, a
plan is confirmed two turns later. Items that share a ``session_id`` (or, for
chunks of one document, a ``document_id``) form a sequence in the order they
were stored (item pk order); an item's neighbours are the items within
``radius`` places of it in that sequence.

:func:`smooth` lifts each score by a share of its best neighbour's score, on
the fused scores the search already has, so nothing is embedded again at query
time. The layout is derived like the keyword index: built from the database
when a cube is first searched and kept in step with every change.

On the LoCoMo dev split (benchmarks/retrieval.py), taking 0.8 of the best score
within three turns lifts evidence recall@10 of the full pipeline from 69.6 to
78.5; in offline trials a sum over the neighbours did a little worse than the
best one, and one turn either side worse than two or three.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Placement:
    """What the layout keeps of one item."""

    group: str | None
    speaker: str | None
    event_time: datetime | None


class CubeLayout:
    """Session sequences, speakers and event times of one cube's items."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._items: dict[int, Placement] = {}
        self._groups: dict[str, list[int]] = {}  # group -> pks, ascending
        self._speakers: dict[str, int] = {}  # lower-cased speaker -> item count
        self._near: dict[tuple[int, int], list[int]] = {}  # (pk, radius) -> neighbours

    def __len__(self) -> int:
        return len(self._items)

    def upsert(self, placements: Iterable[tuple[int, Placement]]) -> None:
        """Add or replace items ``(pk, placement)``."""
        with self.lock:
            self._near.clear()
            for pk, placement in placements:
                self._drop(pk)
                self._items[pk] = placement
                if placement.group is not None:
                    bisect.insort(self._groups.setdefault(placement.group, []), pk)
                if placement.speaker:
                    name = placement.speaker.lower()
                    self._speakers[name] = self._speakers.get(name, 0) + 1

    def remove(self, pks: Iterable[int]) -> None:
        """Forget items ``pks`` (unknown ones are ignored)."""
        with self.lock:
            self._near.clear()
            for pk in pks:
                self._drop(pk)

    def _drop(self, pk: int) -> None:
        old = self._items.pop(pk, None)
        if old is None:
            return
        if old.group is not None:
            members = self._groups[old.group]
            del members[bisect.bisect_left(members, pk)]
            if not members:
                del self._groups[old.group]
        if old.speaker:
            name = old.speaker.lower()
            self._speakers[name] -= 1
            if not self._speakers[name]:
                del self._speakers[name]

    def get(self, pk: int) -> Placement | None:
        return self._items.get(pk)

    def speakers(self) -> list[str]:
        """Lower-cased names of everyone who said something in the cube."""
        with self.lock:
            return list(self._speakers)

    def neighbours(self, pk: int, radius: int) -> list[int]:
        """Items within ``radius`` places of ``pk`` in its session (``pk`` excluded)."""
        near = self._near.get((pk, radius))
        if near is None:
            placement = self._items.get(pk)
            if placement is None or placement.group is None or radius <= 0:
                near = []
            else:
                members = self._groups[placement.group]
                at = bisect.bisect_left(members, pk)
                near = members[max(0, at - radius) : at] + members[at + 1 : at + 1 + radius]
            self._near[(pk, radius)] = near
        return near


def smooth(
    scores: dict[int, float],
    floor: float,
    layout: CubeLayout,
    weight: float,
    radius: int,
    visible: Callable[[int], bool],
) -> dict[int, float]:
    """Each item's score plus ``weight`` times its best neighbour's score.

    Neighbours of the scored items join with the ``floor`` score as their own
    (the channels did not return them); an item without a scored neighbour gets
    ``weight * floor``, so every item is lifted by the same rule.

    Args:
        scores: fused scores of the candidates.
        floor: the fused score of an item no channel returned.
        visible: whether an item may be returned (filter and state).
    """
    if weight <= 0 or radius <= 0:
        return scores
    get = scores.get
    with layout.lock:
        pool = dict(scores)
        for pk in scores:
            for other in layout.neighbours(pk, radius):
                if other not in pool and visible(other):
                    pool[other] = floor
        lifted = {}
        for pk, own in pool.items():
            best = max([get(o, floor) for o in layout.neighbours(pk, radius)], default=floor)
            lifted[pk] = own + weight * best
    return lifted
