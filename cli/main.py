"""The ``memos`` command line: inspect, add, search and maintain memory.

Every read command takes ``--json``; errors print one line and exit non-zero.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from memos.cli import activation, admin, items, lifecycle, parametric, service
from memos.cli.output import CliError, err_console, fail
from typer.core import TyperGroup

from memos.errors import MemosError


class _Group(TyperGroup):
    """Turns library errors into one-line CLI errors (no tracebacks) and
    warnings into one-line ``warning:`` notes."""

    def invoke(self, ctx: Any) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except (MemosError, CliError, OSError, UnicodeError) as exc:
                fail(str(exc))


def _show_warning(message: Warning | str, *_: Any, **__: Any) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


app = typer.Typer(
    cls=_Group,
    help="memos: agent memory in three tiers (plaintext, activation, parametric).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option(help="Memory folder (default $MEMOS_HOME or ~/.memos).")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default SQLite under home).")
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="'default' or a local sentence-transformers folder.")
    ] = None,
) -> None:
    ctx.obj = {"home": home, "database_url": db, "embedder": embedder}


items.register(app)
admin.register(app)
activation.register(app)
parametric.register(app)
lifecycle.register(app)
service.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
