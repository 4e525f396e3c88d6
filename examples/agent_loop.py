"""A small agent loop: chat with the default model, remembering what the user says.

Every user turn is stored as a memory; replies draw on the cube's memories
(as a KV snapshot once one is built, else as plaintext context). Runs offline.

Run: ``.venv/bin/python examples/agent_loop.py`` (type ``/snapshot`` to cache
the memories as KV, ``/quit`` to leave). With ``--script`` it plays a fixed
conversation instead of reading stdin.
"""

from __future__ import annotations

import argparse
import tempfile

from memos import Memos, MemosConfig

SCRIPT = [
    "Hi! My name is Tomas and I live in Valparaiso.",
    "I have a dog named Pixel.",
    "/snapshot",
    "What is my dog's name?",
    "Where do I live?",
]


def turn(mem: Memos, cube: str, line: str) -> str:
    """Handle one user line and return what to print."""
    if line == "/snapshot":
        info = mem.build_snapshot(cube)
        return f"[cached {info.items} memories as {info.tokens} tokens of KV]"
    mem.add_messages([{"role": "user", "content": line}], cube=cube)
    reply = mem.chat(line, cube=cube, max_new_tokens=48)
    source = "snapshot" if reply.snapshot_id else "plaintext"
    return f"{reply.text}\n  [{source}, first token after {reply.ttft_s * 1000:.0f} ms]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--script", action="store_true", help="play a fixed conversation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, Memos(MemosConfig(home=home)) as mem:
        lines = iter(SCRIPT) if args.script else iter(lambda: input("you> ").strip(), "/quit")
        for line in lines:
            if not line:
                continue
            if args.script:
                print(f"you> {line}")
            print(f"bot> {turn(mem, 'agent', line)}")


if __name__ == "__main__":
    main()
