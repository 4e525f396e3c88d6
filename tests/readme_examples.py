"""The README's examples, as written: each is the ```python block after a
``<!-- example: NAME -->`` line."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example(name: str) -> str:
    """The source of the README example ``name``."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    if found is None:
        raise LookupError(f"README.md has no example {name!r}")
    return found.group(1)


def run_example(name: str) -> None:
    """Run the README example ``name`` as a script would."""
    exec(compile(example(name), f"README.md:{name}", "exec"), {"__name__": "__main__"})
