"""Parametric-tier commands: adapters ls | train | attach | detach | merge | rm."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from memos.cli.output import CliError, Json, console, open_memos, print_json, progress_bar, table

from memos.parametric.config import TrainConfig

adapters_app = typer.Typer(help="Side-GLU adapters (the parametric tier).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the parametric commands to ``app``."""
    app.add_typer(adapters_app, name="adapters")


@adapters_app.command("ls")
def adapters_ls(
    ctx: typer.Context,
    cube: Annotated[str | None, typer.Option("--cube", "-c", help="Cube (default: all).")] = None,
    json_out: Json = False,
) -> None:
    """List adapters, newest first."""
    with open_memos(ctx) as memos:
        adapters = memos.parametric.adapters(cube)
    if json_out:
        print_json([a.to_dict() for a in adapters])
        return
    columns = ["id", "cube", "layers", "rank", "items", "attached", "stale", "loss"]
    out = table(None, [*columns, "recall", "held", "gated"])
    for a in adapters:
        loss = a.training.get("final_loss")
        recall = "-" if a.question_recall is None else f"{a.question_recall:.0%}"
        out.add_row(
            a.id[:8],
            a.cube,
            ",".join(map(str, a.layers)),
            str(a.rank),
            str(a.items),
            "yes" if a.attached else "no",
            a.stale_reason or ("yes" if a.stale else "no"),
            f"{loss:.3f}" if isinstance(loss, float) else "-",
            recall,
            str(len(a.held_items)),
            "yes" if a.gate_thresholds else "no",
        )
    console.print(out if adapters else "no adapters")


@adapters_app.command("train")
def adapters_train(
    ctx: typer.Context,
    cube: Annotated[str, typer.Option("--cube", "-c", help="Cube name.")] = "default",
    rank: Annotated[int, typer.Option(help="Units per memory layer.")] = TrainConfig.rank,
    steps: Annotated[int, typer.Option(help="Most optimizer steps.")] = TrainConfig.steps,
    lr: Annotated[float, typer.Option(help="AdamW learning rate.")] = TrainConfig.lr,
    batch_size: Annotated[
        int, typer.Option(help="Training examples per step.")
    ] = TrainConfig.batch_size,
    layers: Annotated[str | None, typer.Option(help="Comma-separated layer indexes.")] = None,
    locality_weight: Annotated[
        float, typer.Option(help="Weight of the KL that keeps other answers as they were (0: off).")
    ] = TrainConfig.locality_weight,
    gate: Annotated[
        bool,
        typer.Option(
            help="Gate each memory: an exact no-op on ordinary text; trains slower a step, "
            "merges only with --drop-gates."
        ),
    ] = TrainConfig.gate,
    seed: Annotated[int, typer.Option(help="Seeds initialization, batching.")] = TrainConfig.seed,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Only items with tag.")
    ] = None,
    json_out: Json = False,
) -> None:
    """Consolidate a cube's memories into a new adapter."""
    try:
        chosen = tuple(int(x) for x in layers.split(",")) if layers else None
    except ValueError:
        raise CliError(f"--layers takes comma-separated integers, got {layers!r}") from None
    flt = {"tags": tag} if tag else None
    with open_memos(ctx) as memos, progress_bar("training", enabled=not json_out) as bar:
        info = memos.consolidate(
            cube,
            filter=flt,
            progress=bar,
            rank=rank,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            layers=chosen,
            locality_weight=locality_weight,
            gate=gate,
            seed=seed,
        )
    if json_out:
        print_json(info.to_dict())
        return
    t = info.training
    recall = "-" if info.question_recall is None else f"{info.question_recall:.0%}"
    console.print(
        f"trained {info.id} on {info.items} memories: layers {info.layers}, rank {info.rank}, "
        f"{t['steps']} steps, loss {t['final_loss']:.3f}, {t['seconds']:.0f} s; "
        f"held-out question recall {recall}, {len(info.held_items)} memories held",
        highlight=False,
    )


@adapters_app.command("attach")
def adapters_attach(ctx: typer.Context, adapter_id: str, json_out: Json = False) -> None:
    """Attach an adapter: generation in its cube uses it from now on."""
    with open_memos(ctx) as memos:
        info = memos.parametric.attach(adapter_id)
    print_json(info.to_dict()) if json_out else console.print(
        f"attached {info.id}", highlight=False
    )


@adapters_app.command("detach")
def adapters_detach(ctx: typer.Context, adapter_id: str, json_out: Json = False) -> None:
    """Detach (offload) an adapter; its file stays."""
    with open_memos(ctx) as memos:
        info = memos.parametric.detach(adapter_id)
    print_json(info.to_dict()) if json_out else console.print(
        f"detached {info.id}", highlight=False
    )


@adapters_app.command("merge")
def adapters_merge(
    ctx: typer.Context,
    adapter_ids: Annotated[list[str], typer.Argument(help="Adapter id(s) to merge.")],
    out: Annotated[Path, typer.Option(help="Folder for the merged model.")],
    drop_gates: Annotated[
        bool,
        typer.Option(
            "--drop-gates",
            help="Merge gated adapters without their gates (they then speak on every token).",
        ),
    ] = False,
    json_out: Json = False,
) -> None:
    """Merge adapters into the model's FFNs and save it as a plain transformers model.

    Ungated adapters merge exactly; a gated one only with --drop-gates.
    """
    with open_memos(ctx) as memos:
        path = memos.parametric.merge(adapter_ids, out, drop_gates=drop_gates)
    if json_out:
        print_json({"merged": adapter_ids, "path": str(path)})
        return
    console.print(f"merged model saved to {path}", highlight=False)


@adapters_app.command("rm")
def adapters_rm(ctx: typer.Context, adapter_ids: list[str], json_out: Json = False) -> None:
    """Delete adapters (their memories stay in plaintext; every id is checked first)."""
    with open_memos(ctx) as memos:
        for adapter_id in adapter_ids:
            memos.parametric.info(adapter_id)
        for adapter_id in adapter_ids:
            memos.parametric.remove(adapter_id)
            if not json_out:
                console.print(f"removed {adapter_id}", highlight=False)
    if json_out:
        print_json({"removed": adapter_ids})
