"""Ninety simulated days of forgetting and recall, in about ten seconds.

Four memories, four fates: one recalled at growing intervals (stays active),
one recalled once (fades later), one never used (archived, then forgotten),
one pinned (never decays). Prints the states week by week, runs the
scheduler's decay pass daily, and draws the retention curves.

    python examples/forgetting.py --out retention.png
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path

from memos import Memos, MemosConfig
from memos.clock import ManualClock
from memos.lifecycle.plots import plot_retention

DAY = timedelta(days=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("retention.png"))
    args = parser.parse_args()
    clock = ManualClock()
    home = Path(tempfile.mkdtemp(prefix="memos-forgetting-"))
    with Memos(MemosConfig(home=home), clock=clock) as mem:
        spaced = mem.add("Ana's flight to Lisbon leaves from gate B12")
        once = mem.add("the dentist appointment is on the 14th")
        unused = mem.add("the hotel breakfast ends at ten")
        pinned = mem.add("Ana is allergic to penicillin", pinned=True)
        items = {"spaced": spaced, "once": once, "unused": unused, "pinned": pinned}
        spaced_days = {3, 8, 16, 29, 50, 84}
        print("day  " + "  ".join(f"{name:>9}" for name in items))
        for day in range(1, 91):
            clock.advance(DAY)
            if day in spaced_days:
                mem.context("when does Ana's flight leave?", budget_tokens=40)
            if day == 2:
                mem.mark_used([once.id])
            mem.decay()
            if day % 7 == 0 or day == 90:
                states = [mem.get(i.id).state for i in items.values()]
                print(f"{day:>3}  " + "  ".join(f"{s:>9}" for s in states))
        path = plot_retention(mem.core, [i.id for i in items.values()], args.out, horizon_days=20)
        print(f"retention curves: {path}")


if __name__ == "__main__":
    main()
