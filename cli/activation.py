"""Activation-tier commands: kv ls | build | rm, and chat."""

from __future__ import annotations

from typing import Annotated

import typer
from memos.cli.output import Json, console, open_memos, print_json, table

from memos.fields import DEFAULT_SNAPSHOT_DTYPE

kv_app = typer.Typer(help="KV-cache snapshots (the activation tier).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the activation commands to ``app``."""
    app.add_typer(kv_app, name="kv")
    app.command("chat")(chat)


@kv_app.command("ls")
def kv_ls(
    ctx: typer.Context,
    cube: Annotated[str | None, typer.Option("--cube", "-c", help="Cube (default: all).")] = None,
    json_out: Json = False,
) -> None:
    """List snapshots, newest first."""
    with open_memos(ctx) as memos:
        snapshots = memos.activation.snapshots(cube)
    if json_out:
        print_json([s.to_dict() for s in snapshots])
        return
    out = table(None, ["id", "cube", "tokens", "items", "MB", "dtype", "stale", "last used"])
    for s in snapshots:
        out.add_row(
            s.id[:8],
            s.cube,
            str(s.tokens),
            str(s.items),
            f"{s.byte_size / 2**20:.1f}",
            s.dtype,
            s.stale_reason or ("yes" if s.stale else "no"),
            s.last_used_at or "-",
        )
    console.print(out if snapshots else "no snapshots")


@kv_app.command("build")
def kv_build(
    ctx: typer.Context,
    cube: Annotated[str, typer.Option("--cube", "-c", help="Cube name.")] = "default",
    query: Annotated[str | None, typer.Option(help="Snapshot the best memories for this.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest block in tokens.")] = 1024,
    dtype: Annotated[
        str, typer.Option(help="float32, float16 or bfloat16.")
    ] = DEFAULT_SNAPSHOT_DTYPE,
    json_out: Json = False,
) -> None:
    """Prefill a block of memories once and store its KV cache."""
    with open_memos(ctx) as memos:
        info = memos.build_snapshot(cube, query=query, max_tokens=max_tokens, dtype=dtype)
    if json_out:
        print_json(info.to_dict())
        return
    console.print(
        f"built {info.id}: {info.items} memories, {info.tokens} tokens, "
        f"{info.byte_size / 2**20:.1f} MB ({info.dtype})",
        highlight=False,
    )


@kv_app.command("rm")
def kv_rm(
    ctx: typer.Context,
    snapshot_ids: Annotated[list[str], typer.Argument(help="Snapshot id(s).")],
) -> None:
    """Delete snapshots (their memories stay in plaintext; every id is checked first)."""
    with open_memos(ctx) as memos:
        for snapshot_id in snapshot_ids:
            memos.activation.info(snapshot_id)
        for snapshot_id in snapshot_ids:
            memos.activation.remove(snapshot_id)
            console.print(f"removed {snapshot_id}", highlight=False)


def chat(
    ctx: typer.Context,
    message: Annotated[list[str], typer.Argument(help="What to say.")],
    cube: Annotated[str, typer.Option("--cube", "-c", help="Cube name.")] = "default",
    max_new_tokens: Annotated[int, typer.Option(help="Longest reply in tokens.")] = 64,
    no_snapshot: Annotated[bool, typer.Option(help="Read memories as text, not KV.")] = False,
    json_out: Json = False,
) -> None:
    """Ask the language model, with the cube's memories."""
    with open_memos(ctx) as memos:
        reply = memos.chat(
            " ".join(message),
            cube=cube,
            max_new_tokens=max_new_tokens,
            use_snapshot=not no_snapshot,
        )
    if json_out:
        print_json(reply.to_dict())
        return
    console.print(reply.text, highlight=False)
    source = f"snapshot {reply.snapshot_id[:8]}" if reply.snapshot_id else "plaintext memories"
    console.print(
        f"[dim]{source}; {reply.cached_tokens}/{reply.prompt_tokens} prompt tokens cached; "
        f"first token {reply.ttft_s * 1000:.0f} ms[/dim]",
        highlight=False,
    )
