"""The service benchmark's workload: the cube, the facts added and the questions asked.

Shared by ``service.py`` (seeding and the in-process capacity run) and
``loadgen.py`` (the clients of the service), so both run the same op mix on
the same kind of text.
"""

from __future__ import annotations

import random

NAMES = "Ana Ben Cy Di Eli Fay Gus Hal Ivy Jon Kai Lea Max Nia Oto Pia Quin Rae Sol Tia".split()
ACTS = "hiked baked read fixed painted learned planted ran wrote visited adopted cooked".split()
PLACES = "Lisbon Porto Oslo Kyoto Lima Quito Cairo Accra Hanoi Perth Cork Bergen".split()
CUBE = "bench"
TENANT = "bench"


def fact(rng: random.Random, tag: str) -> str:
    """A new memory, unique by its tag."""
    return (
        f"{rng.choice(NAMES)} {rng.choice(ACTS)} in {rng.choice(PLACES)} "
        f"on day {rng.randrange(1000)} ({tag})"
    )


def query(rng: random.Random) -> str:
    """A question about the facts."""
    return f"what did {rng.choice(NAMES)} do in {rng.choice(PLACES)}"


def pick_op(rng: random.Random, can_update: bool) -> str:
    """70 % search, 25 % add, 5 % update (an add until there is something to update)."""
    roll = rng.random()
    if roll < 0.70:
        return "search"
    return "add" if roll < 0.95 or not can_update else "update"
