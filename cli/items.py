"""Item commands: add, search, show, ls, history, rm, restore, stats, cubes, export, import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from memos.cli.output import (
    CliError,
    Json,
    console,
    open_memos,
    parse_pairs,
    print_json,
    progress_bar,
    short,
    table,
)

from memos.records import State

Cube = Annotated[str, typer.Option("--cube", "-c", help="Cube name.")]
Tags = Annotated[list[str] | None, typer.Option("--tag", "-t", help="Tag (repeatable).")]
Meta = Annotated[
    list[str] | None, typer.Option("--meta", "-m", help="Metadata key=value (repeatable).")
]


def register(app: typer.Typer) -> None:
    """Attach the item commands to ``app``."""
    for command in (add, search, show, ls, history, rm, restore, stats, cubes, export):
        app.command()(command)
    app.command("import")(import_)


def add(
    ctx: typer.Context,
    text: Annotated[
        list[str] | None, typer.Argument(help="Memory text (words are joined).")
    ] = None,
    cube: Cube = "default",
    tag: Tags = None,
    meta: Meta = None,
    user: Annotated[str | None, typer.Option(help="Owning user id.")] = None,
    agent: Annotated[str | None, typer.Option(help="Owning agent id.")] = None,
    session: Annotated[str | None, typer.Option(help="Session or conversation id.")] = None,
    speaker: Annotated[str | None, typer.Option(help="Who said it.")] = None,
    pin: Annotated[bool, typer.Option(help="Pin it (never decays).")] = False,
    importance: Annotated[
        float, typer.Option(help="0..1: higher starts more stable (fades more slowly).")
    ] = 0.0,
    file: Annotated[
        Path | None, typer.Option(help="Read memories from a file ('-' for stdin), one per line.")
    ] = None,
    chunk: Annotated[
        bool, typer.Option(help="Store the text (or whole file) as overlapping chunks.")
    ] = False,
    json_out: Json = False,
) -> None:
    """Add memories: TEXT, or each non-empty line of --file."""
    fields: dict[str, Any] = {
        "tags": tag,
        "metadata": parse_pairs(meta),
        "user_id": user,
        "agent_id": agent,
        "session_id": session,
        "speaker": speaker,
        "pinned": pin,
        "importance": importance,
    }
    body = _read_input(text, file)
    with open_memos(ctx) as memos:
        if chunk:
            records = memos.add_document(body, cube=cube, **fields)
        elif file is not None:
            lines = _file_lines(file, body, memos.config.max_text_chars, fields)
            with progress_bar("adding", enabled=len(lines) > 50) as bar:
                records = memos.add_many(lines, cube=cube, progress=bar, **fields)
        else:
            records = [memos.add(body, cube=cube, **fields)]
    if json_out:
        print_json([r.to_dict() for r in records])
        return
    for record in records:
        console.print(
            f"[green]stored[/green] {record.id}  {short(record.text, 60)}", highlight=False
        )


def _read_input(text: list[str] | None, file: Path | None) -> str:
    if file is not None and text:
        raise CliError("give TEXT or --file, not both")
    if file is None:
        if not text:
            raise CliError("nothing to add: give TEXT or --file")
        return " ".join(text)
    if str(file) == "-":
        return sys.stdin.read()
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CliError(
            f"{file}: line {line} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def _file_lines(file: Path, body: str, max_chars: int, fields: dict[str, Any]) -> list[str]:
    """The non-empty lines of ``file``, each checked first; an error names its line."""
    from memos.errors import InvalidInputError
    from memos.plaintext.ingest import from_mapping

    lines = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            from_mapping(line, max_chars, fields)
        except InvalidInputError as exc:
            raise CliError(f"{file}: line {number}: {exc}; nothing was added") from None
        lines.append(line)
    return lines


def _filter(
    tag: list[str] | None,
    meta: list[str] | None,
    user: str | None,
    state: list[str] | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    flt: dict[str, Any] = {"tags": tag or (), "metadata": parse_pairs(meta)}
    if user:
        flt["user_id"] = user
    if state:
        flt["states"] = state
    if since:
        flt["since"] = since
    if until:
        flt["until"] = until
    return flt


def search(
    ctx: typer.Context,
    query: Annotated[list[str], typer.Argument(help="What to look for.")],
    cube: Cube = "default",
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword.")] = "hybrid",
    tag: Tags = None,
    meta: Meta = None,
    user: Annotated[str | None, typer.Option(help="Only this user's items.")] = None,
    state: Annotated[list[str] | None, typer.Option(help="Allowed states (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="Happened at or after (ISO date).")] = None,
    until: Annotated[str | None, typer.Option(help="Happened at or before (ISO date).")] = None,
    json_out: Json = False,
) -> None:
    """Hybrid (dense + keyword) search with score parts."""
    flt = _filter(tag, meta, user, state, since, until)
    with open_memos(ctx) as memos:
        hits = memos.search(" ".join(query), cube=cube, k=k, filter=flt, mode=mode)
    if json_out:
        print_json([hit.to_dict() for hit in hits])
        return
    out = table(None, ["#", "score", "dense", "keyword", "id", "text"])
    for rank, hit in enumerate(hits, 1):
        p = hit.parts
        out.add_row(
            str(rank),
            f"{hit.score:.3f}",
            _num(p.dense),
            _num(p.keyword),
            hit.item.id[:8],
            short(hit.item.text),
        )
    console.print(out if hits else "no matches")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def show(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    json_out: Json = False,
) -> None:
    """Show one item with all its fields and its retention now."""
    with open_memos(ctx) as memos:
        record = memos.get(item_id)
        data = {
            **record.to_dict(),
            "retention": memos.config.retention.retention(record, memos.clock.now()),
        }
    if json_out:
        print_json(data)
        return
    out = table(None, ["field", "value"])
    for key, value in data.items():
        out.add_row(key, f"{value:.3f}" if key == "retention" else str(value))
    console.print(out)


def ls(
    ctx: typer.Context,
    cube: Cube = "default",
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    tag: Tags = None,
    state: Annotated[list[str] | None, typer.Option(help="Allowed states (repeatable).")] = None,
    json_out: Json = False,
) -> None:
    """List items of a cube, newest first."""
    flt = _filter(tag, None, None, state, None, None)
    with open_memos(ctx) as memos:
        records = memos.list(cube=cube, filter=flt, limit=limit, offset=offset)
    if json_out:
        print_json([r.to_dict() for r in records])
        return
    out = table(f"cube {cube}", ["id", "created", "state", "v", "tags", "text"])
    for r in records:
        out.add_row(
            r.id[:8],
            f"{r.created_at:%Y-%m-%d %H:%M}",
            r.state,
            str(r.version),
            ",".join(r.tags),
            short(r.text, 70),
        )
    console.print(out if records else "no items")


def history(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="Item id.")],
    json_out: Json = False,
) -> None:
    """Every version of an item, oldest first."""
    with open_memos(ctx) as memos:
        versions = memos.history(item_id)
    if json_out:
        print_json([v.to_dict() for v in versions])
        return
    out = table(item_id, ["version", "recorded", "reason", "text"])
    for v in versions:
        out.add_row(
            str(v.version), f"{v.recorded_at:%Y-%m-%d %H:%M:%S}", v.reason or "", short(v.text)
        )
    console.print(out)


def rm(
    ctx: typer.Context,
    item_ids: Annotated[list[str], typer.Argument(help="Item id(s).")],
    purge: Annotated[bool, typer.Option(help="Delete for good (no restore).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before purging.")] = False,
) -> None:
    """Soft-delete items (restorable), or --purge them for good.

    Every id is checked before any item is changed.
    """
    if purge and not yes:
        typer.confirm(f"Purge {len(item_ids)} item(s) for good?", abort=True)
    with open_memos(ctx) as memos:
        for item_id in item_ids:
            if memos.get(item_id).state == State.DELETED and not purge:
                raise CliError(f"item {item_id} is already deleted; nothing was changed")
        for item_id in item_ids:
            if purge:
                memos.purge(item_id)
            else:
                memos.delete(item_id)
            console.print(f"{'purged' if purge else 'deleted'} {item_id}", highlight=False)


def restore(
    ctx: typer.Context,
    item_ids: Annotated[list[str], typer.Argument(help="Item id(s).")],
) -> None:
    """Bring soft-deleted items back (every id is checked first)."""
    with open_memos(ctx) as memos:
        for item_id in item_ids:
            memos.get(item_id)
        for item_id in item_ids:
            record = memos.restore(item_id)
            console.print(f"restored {record.id} ({record.state})", highlight=False)


def stats(ctx: typer.Context, cube: Cube = "default", json_out: Json = False) -> None:
    """Counts, states, versions and index figures of a cube."""
    with open_memos(ctx) as memos:
        result = memos.stats(cube)
    if json_out:
        print_json(result.to_dict())
        return
    out = table(f"cube {cube}", ["figure", "value"])
    for key, value in result.to_dict().items():
        out.add_row(key, str(value))
    console.print(out)


def cubes(ctx: typer.Context, json_out: Json = False) -> None:
    """List cubes."""
    with open_memos(ctx) as memos:
        names = memos.cubes()
    if json_out:
        print_json(names)
        return
    console.print("\n".join(names) if names else "no cubes yet")


def export(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="Output file, or '-' for stdout.")] = "-",
    cube: Annotated[str | None, typer.Option("--cube", "-c", help="Only this cube.")] = None,
) -> None:
    """Export items (all states, with versions) as JSON lines."""
    with open_memos(ctx) as memos:
        count = memos.export_jsonl(sys.stdout if path == "-" else path, cube=cube)
    if path != "-":
        console.print(f"exported {count} item(s) to {path}", highlight=False)


def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file written by `memos export`.")],
    cube: Annotated[str | None, typer.Option("--cube", "-c", help="Import into this cube.")] = None,
    json_out: Json = False,
) -> None:
    """Import an export (ids and versions kept; ids already present are skipped)."""
    with open_memos(ctx) as memos:
        report = memos.import_jsonl(path, cube=cube)
    if json_out:
        print_json(report.__dict__)
        return
    console.print(
        f"imported {report.imported} item(s) with {report.versions} version(s); "
        f"skipped {report.skipped}",
        highlight=False,
    )
