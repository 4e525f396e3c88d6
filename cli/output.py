"""Shared CLI plumbing: opening memory from options, printing, progress bars."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from memos.config import MemosConfig

console = Console()
err_console = Console(stderr=True)

#: The ``--json`` flag every command that reports takes.
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class CliError(Exception):
    """A clean one-line failure of a command (exit status 1)."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 1."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@contextmanager
def open_memos(ctx: typer.Context) -> Iterator[Any]:
    """A ``Memos`` built from the global options, closed afterwards."""
    from memos.client import Memos

    options = ctx.find_root().obj or {}
    config = MemosConfig.from_env(
        home=options.get("home"),
        database_url=options.get("database_url"),
        embedder=options.get("embedder"),
    )
    memos = Memos(config)
    try:
        yield memos
    finally:
        memos.close()


def print_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (datetimes as ISO strings)."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def table(title: str | None, columns: list[str]) -> Table:
    """A rich table with the house style."""
    out = Table(title=title, show_lines=False, header_style="bold")
    for name in columns:
        out.add_column(name, overflow="fold")
    return out


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A ``(done, total)`` callback drawing a progress bar on stderr."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def parse_pairs(pairs: list[str] | None, what: str = "--meta") -> dict[str, Any]:
    """``key=value`` options into a dict; values parse as JSON when they can."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{what} takes key=value, got {pair!r}")
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError:
            result[key] = raw
    return result


def short(text: str, width: int = 80) -> str:
    """One line of at most ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
