"""A tour of the memos SDK: add, search with filters, update, history, context.

Run: ``.venv/bin/python examples/sdk_tour.py`` (uses a temporary MEMOS home).
"""

from __future__ import annotations

import tempfile

from memos import Memos, MemosConfig


def main() -> None:
    with tempfile.TemporaryDirectory() as home, Memos(MemosConfig(home=home)) as mem:
        mem.add_many(
            [
                {"text": "Sam's sister lives in Osaka", "tags": ["family"]},
                {"text": "Sam is vegetarian", "tags": ["food"]},
                {"text": "Sam's team ships on Thursdays", "tags": ["work"]},
            ],
            cube="sam",
            user_id="sam",
        )
        mem.add_messages(
            [
                {"role": "user", "name": "Sam", "content": "I started learning the banjo"},
                {"role": "assistant", "content": "Nice! How long have you been playing?"},
            ],
            cube="sam",
            session_id="chat-1",
        )
        for hit in mem.search("what should I cook for Sam?", cube="sam", k=2):
            print(f"{hit.score:.3f}  dense={hit.parts.dense:.3f}  {hit.item.text}")
        work = mem.search("release day", cube="sam", filter={"tags": ["work"]}, k=1)[0]
        mem.update(work.item.id, "Sam's team ships on Fridays now", reason="schedule change")
        for version in mem.history(work.item.id):
            print(f"v{version.version}: {version.text}")
        print(mem.context("plan a weekend with Sam", cube="sam", budget_tokens=80).text)
        print(mem.stats("sam"))


if __name__ == "__main__":
    main()
