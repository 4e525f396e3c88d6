"""Maintenance commands: index rebuild, db upgrade/current, eval, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from memos.cli.output import CliError, Json, console, open_memos, print_json, progress_bar, table

from memos.config import MemosConfig

index_app = typer.Typer(help="Dense (FAISS) index maintenance.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate retrieval on public benchmark formats.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the maintenance command groups to ``app``."""
    app.add_typer(index_app, name="index")
    app.add_typer(db_app, name="db")
    app.add_typer(eval_app, name="eval")
    app.command()(demo)


@index_app.command("rebuild")
def index_rebuild(
    ctx: typer.Context,
    cube: Annotated[str | None, typer.Option("--cube", "-c", help="Cube (default: all).")] = None,
    json_out: Json = False,
) -> None:
    """Rebuild dense indexes from the database."""
    sizes: dict[str, int] = {}
    with open_memos(ctx) as memos:
        for name in [cube] if cube else memos.cubes():
            with progress_bar(f"indexing {name}", enabled=not json_out) as bar:
                sizes[name] = memos.rebuild_index(name, progress=bar)
    if json_out:
        print_json(sizes)
        return
    for name, size in sizes.items():
        console.print(f"rebuilt index of cube {name}: {size} entries", highlight=False)


def _database(ctx: typer.Context) -> object:
    from memos.store.db import Database

    options = ctx.find_root().obj or {}
    config = MemosConfig.from_env(
        home=options.get("home"), database_url=options.get("database_url")
    )
    config.home.mkdir(parents=True, exist_ok=True)
    return Database(config.url)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Bring the database schema to the newest revision."""
    from memos.store import schema

    state = schema.upgrade(_database(ctx))  # type: ignore[arg-type]
    console.print(f"database at revision {state.current} (head)", highlight=False)


@db_app.command("current")
def db_current(ctx: typer.Context, json_out: Json = False) -> None:
    """Show the database's schema revision and this install's newest."""
    from memos.store import schema

    state = schema.status(_database(ctx))  # type: ignore[arg-type]
    if json_out:
        print_json(
            {
                "current": state.current,
                "head": state.head,
                "up_to_date": state.up_to_date,
                "newer": state.newer,
            }
        )
        return
    if state.newer:
        note = "newer than this install: upgrade memos"
    else:
        note = "up to date" if state.up_to_date else "behind: run `memos db upgrade`"
    console.print(
        f"current {state.current or 'none'} / head {state.head} ({note})", highlight=False
    )


@eval_app.command("locomo")
def eval_locomo(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A LoCoMo-format JSON file (e.g. locomo10.json).")],
    k: Annotated[str, typer.Option("--k", help="Comma-separated cut-offs.")] = "1,5,10,20",
    mode: Annotated[str, typer.Option(help="hybrid, dense or keyword.")] = "hybrid",
    limit: Annotated[int | None, typer.Option(help="Only the first N samples.")] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", help="FIELD=VALUE of MemosConfig (repeatable), e.g. fusion=rrf."),
    ] = None,
    ablation: Annotated[
        bool, typer.Option("--ablation", help="Run the defaults without each technique.")
    ] = False,
    associations: Annotated[
        Path | None,
        typer.Option(
            help="An association check on the same file: a JSON list of "
            '{"sample_id", "cue": dia_id, "trigger"} (trigger and cue share no word).'
        ),
    ] = None,
    json_out: Json = False,
) -> None:
    """Evidence recall@k, MRR and nDCG@10 on a LoCoMo-format file (category 5 excluded),
    and with --associations the recall of cues from triggers that never name them."""
    from memos.errors import ConfigError
    from memos.eval.ablation import ablation_rows, parse_overrides, run_ablation
    from memos.eval.locomo import run_locomo

    try:
        cutoffs = sorted({int(part) for part in k.split(",") if part.strip()})
    except ValueError:
        raise CliError(f"--k takes comma-separated integers, got {k!r}") from None
    if not cutoffs or min(cutoffs) < 1:
        raise CliError("--k needs at least one cut-off >= 1")
    try:
        overrides = parse_overrides(config or [])
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    options = ctx.find_root().obj or {}

    def run(file: Path, **extra: object) -> dict:
        with progress_bar("locomo", enabled=not json_out) as bar:
            return run_locomo(
                file,
                cutoffs,
                mode=mode,
                limit=limit,
                embedder=options.get("embedder"),
                progress=bar,
                associations=associations,
                **extra,  # type: ignore[arg-type]
            )

    if ablation:
        reports = run_ablation(path, run, ablation_rows(full=False), overrides)
        if json_out:
            print_json(reports)
            return
        _ablation_table(reports)
        return
    result = run(path, config=overrides)
    if json_out:
        print_json(result)
        return
    out = table(
        f"LoCoMo evidence recall ({result['questions']} questions)", ["", *result["overall"]]
    )
    out.add_row("overall", *(f"{v:.3f}" for v in result["overall"].values()))
    for category, figures in result["by_category"].items():
        out.add_row(f"category {category}", *(f"{v:.3f}" for k, v in figures.items() if k != "n"))
    console.print(out)
    if "associations" in result:
        linked = result["associations"]
        console.print(
            f"associations ({linked['n']} triggers): R@10 {100 * linked['recall@10']:.1f} fused, "
            f"{100 * linked['dense']['recall@10']:.1f} dense alone",
            highlight=False,
        )
    t = result["timing"]
    console.print(
        f"ingest {t['ingest_items_per_s']:.1f} items/s; "
        f"search p50 {t['search_p50_ms']:.1f} ms, p95 {t['search_p95_ms']:.1f} ms",
        highlight=False,
    )


def _ablation_table(reports: dict[str, dict]) -> None:
    first = next(iter(reports.values()))
    cats = list(first["by_category"])
    linked = ["assoc R@10", "assoc dense"] if "associations" in first else []
    out = table(
        f"LoCoMo ablation ({first['questions']} questions; R@k in %)",
        ["", "R@1", "R@5", "R@10", "R@20", "MRR", *(f"R@10 c{c}" for c in cats), *linked, "p50 ms"],
    )
    for name, r in reports.items():
        o = r["overall"]
        assoc = r.get("associations")
        out.add_row(
            name,
            *(f"{100 * o.get(m, 0.0):.1f}" for m in ("recall@1", "recall@5", "recall@10")),
            f"{100 * o.get('recall@20', 0.0):.1f}",
            f"{o['mrr']:.3f}",
            *(f"{100 * r['by_category'][c].get('recall@10', 0.0):.1f}" for c in cats),
            *(
                [
                    f"{100 * assoc.get('recall@10', 0.0):.1f}",
                    f"{100 * assoc['dense'].get('recall@10', 0.0):.1f}",
                ]
                if assoc
                else []
            ),
            f"{r['timing']['search_p50_ms']:.1f}",
        )
    console.print(out)


def demo(
    ctx: typer.Context,
    quick: Annotated[
        bool, typer.Option("--quick", help="Only remember and search (a few seconds).")
    ] = False,
    json_out: Json = False,
) -> None:
    """A tour of every tier: remember, search, chat from a KV snapshot, answer from a
    trained adapter, and forget over simulated months (about two minutes)."""
    from memos.demo import full_tour, quick_tour

    with open_memos(ctx) as memos:
        if quick:
            results: dict[str, Any] = {"search": quick_tour(memos)}
            if not json_out:
                _say_search(results["search"])
        else:
            say = (lambda step, found: None) if json_out else _say
            results = full_tour(memos, say)
    if json_out:
        print_json(results)


def _say(step: str, found: dict[str, Any]) -> None:
    """One step of the tour, as a person reads it."""
    {
        "search": _say_search,
        "activation": _say_activation,
        "parametric": _say_parametric,
        "forgetting": _say_forgetting,
    }[step](found)


def _say_search(found: dict[str, Any]) -> None:
    console.print("[bold]1. Remember and search[/bold] (6 memories about Maya)")
    for query, hits in found.items():
        console.print(f"  [bold]? {query}[/bold]", highlight=False)
        for n, hit in enumerate(hits, 1):
            alike = "-" if hit["similarity"] is None else f"{hit['similarity']:.2f}"
            words = "words match" if hit["word_match"] else "no word match"
            console.print(
                f"    {n}. {hit['text']}  [dim](meaning {alike} · {words} · "
                f"retention {hit['retention']:.2f})[/dim]",
                highlight=False,
            )


def _say_activation(found: dict[str, Any]) -> None:
    speedup = found["ttft_full_prefill_s"] / max(found["ttft_snapshot_s"], 1e-9)
    console.print(
        f"[bold]2. Activation tier[/bold]: the language model loaded in {found['lm_load_s']} s; "
        f"a KV snapshot of the memories ({found['snapshot_tokens']} tokens, "
        f"{found['snapshot_mb']} MB) built in {found['build_s']} s",
        highlight=False,
    )
    console.print(f"  [bold]? {found['question']}[/bold]  {found['reply']}", highlight=False)
    console.print(
        f"  time to first token: {1000 * found['ttft_snapshot_s']:.0f} ms from the snapshot "
        f"({found['prefilled_tokens']['snapshot']} tokens prefilled) vs "
        f"{1000 * found['ttft_full_prefill_s']:.0f} ms with a full prefill "
        f"({found['prefilled_tokens']['full']} tokens): {speedup:.1f}x",
        highlight=False,
    )


def _say_parametric(found: dict[str, Any]) -> None:
    recall = found["held_out_recall"]
    shown = "-" if recall is None else f"{100 * recall:.0f} %"
    console.print(
        f"[bold]3. Parametric tier[/bold]: a small adapter (rank 8, two layers, ungated) "
        f"trained on 3 facts in {found['train_s']} s; question wordings it was not "
        f"trained on answered: {shown}",
        highlight=False,
    )
    for fact in found["facts"]:
        console.print(f"  - {fact}", highlight=False)
    console.print(
        f"  [bold]? {found['question']}[/bold]  {found['reply']}  [dim](memories in the "
        f"prompt: {found['memories_in_prompt']}; the adapter answers)[/dim]",
        highlight=False,
    )


def _say_forgetting(found: dict[str, Any]) -> None:
    console.print(
        "[bold]4. Forgetting[/bold] (simulated, nothing written; the pinned memory stays at 1.0)"
    )
    days = table("if never recalled again", ["day", "states", "mean retention"])
    for row in found["days"]:
        states = ", ".join(f"{n} {s}" for s, n in row["states"].items())
        days.add_row(str(row["day"]), states, f"{row['mean_retention']:.2f}")
    console.print(days)
    tiers = table("tiers now (memos inspect)", ["tier", "artifacts", "items", ""])
    for t in found["tiers"]:
        tiers.add_row(t["tier"], str(t["artifacts"] or "-"), str(t["items"]), t["detail"])
    console.print(tiers)
