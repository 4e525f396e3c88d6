"""Lifecycle commands: used, decay, consolidate, jobs, schedule, inspect, plot retention."""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from memos.cli.output import CliError, Json, console, open_memos, print_json, short, table

from memos.records import State

AnyCube = Annotated[str | None, typer.Option("--cube", "-c", help="Cube (default: all).")]
plot_app = typer.Typer(help="Charts of memory over time.", no_args_is_help=True)
HIST_WIDTH = 40


def register(app: typer.Typer) -> None:
    """Attach the lifecycle commands to ``app``."""
    for command in (used, decay, consolidate, jobs, schedule, inspect):
        app.command()(command)
    app.add_typer(plot_app, name="plot")


def used(
    ctx: typer.Context,
    item_ids: Annotated[list[str], typer.Argument(help="Item ids the agent used.")],
) -> None:
    """Count memories as recalled: their stability grows (the spacing effect)."""
    with open_memos(ctx) as memos:
        memos.mark_used(item_ids)
    console.print(f"recorded {len(item_ids)} recall(s)")


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    from memos.validation import parse_time

    return parse_time(value, "--now")


def decay(
    ctx: typer.Context,
    cube: AnyCube = None,
    now: Annotated[
        str | None, typer.Option(help="Decay as of this time (ISO 8601; default: now).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the moves only.")] = False,
    json_out: Json = False,
) -> None:
    """Move items down active → warm → cold → archived → forgotten by retention."""
    with open_memos(ctx) as memos:
        changes = memos.decay(cube=cube, now=_when(now), dry_run=dry_run)
    if json_out:
        print_json({"dry_run": dry_run, "changes": [c.to_dict() for c in changes]})
        return
    verb = "would move" if dry_run else "moved"
    if not changes:
        console.print("nothing to decay")
        return
    out = table(f"{verb} {len(changes)} item(s)", ["item", "cube", "from", "to", "retention"])
    for c in changes[:200]:
        out.add_row(c.item_id[:8], c.cube, c.old, c.new, f"{c.retention:.3f}")
    console.print(out)
    if len(changes) > 200:
        console.print(f"... and {len(changes) - 200} more (use --json for all)")


def consolidate(
    ctx: typer.Context,
    cube: AnyCube = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    json_out: Json = False,
) -> None:
    """Plan tier migrations (decay, snapshots, adapters) and apply them as jobs."""
    with open_memos(ctx) as memos:
        if dry_run:
            plan = memos.scheduler.plan(cube)
            resume = memos.scheduler.unfinished()
            if json_out:
                print_json({**plan.to_dict(), "resume": [j.to_dict() for j in resume]})
                return
            _print_plan(plan, resume)
            return
        with console.status("applying the plan...", spinner="dots"):
            report = memos.scheduler.run(cube, progress=None if json_out else _job_line)
    if json_out:
        print_json(report.to_dict())
    elif not report.jobs and not report.resumed:
        console.print("nothing to do")
    if report.failed:
        raise CliError(f"{len(report.failed)} job(s) failed; see `memos jobs`")


def _print_plan(plan: Any, resume: list[Any]) -> None:
    if resume:
        console.print(f"{len(resume)} unfinished job(s) from an earlier run will run first")
    if not plan.steps:
        console.print("nothing to do")
        return
    out = table(f"plan at {plan.at:%Y-%m-%d %H:%M}", ["#", "cube", "step", "tiers", "what", "rule"])
    for n, step in enumerate(plan.steps, 1):
        out.add_row(
            str(n),
            step.cube,
            step.kind,
            f"{step.from_tier} → {step.to_tier}",
            step.summary(),
            step.rule,
        )
    console.print(out)


def _job_line(job: Any) -> None:
    mark = "[green]done[/green]" if job.status == "done" else f"[red]{job.status}[/red]"
    extra = f" {job.error}" if job.error else ""
    console.print(f"{mark} {job.kind} ({job.cube}): {job.rule}{extra}", highlight=False)


def jobs(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only planned, running, done or failed jobs.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most jobs to show.")] = 50,
    json_out: Json = False,
) -> None:
    """List the scheduler's recent jobs."""
    with open_memos(ctx) as memos:
        found = memos.scheduler.jobs((status,) if status else None, limit)
    if json_out:
        print_json([j.to_dict() for j in found])
        return
    out = table(None, ["run", "#", "cube", "step", "status", "tries", "result / error"])
    for j in found:
        detail = j.error or ", ".join(f"{k}={v}" for k, v in j.result.items())
        out.add_row(
            j.run_id[:8],
            str(j.seq),
            j.cube or "-",
            j.kind,
            j.status,
            str(j.attempts),
            short(detail),
        )
    console.print(out if found else "no jobs yet")


def schedule(
    ctx: typer.Context,
    every: Annotated[float, typer.Option(help="Minutes between runs.")] = 30.0,
    cube: AnyCube = None,
) -> None:
    """Run the scheduler every N minutes until interrupted (Ctrl-C or SIGTERM)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with open_memos(ctx) as memos:
        background = memos.start_scheduler(every, cube=cube)
        console.print(f"scheduler running every {every:g} min; Ctrl-C stops it")
        seen = 0
        while not stop.wait(1.0):
            if background.runs > seen:
                seen = background.runs
                report = background.last_report
                done = len(report.jobs) + len(report.resumed) if report else 0
                console.print(f"run {seen}: {done} job(s) {background.last_error or ''}")
        console.print("stopping (a run in progress finishes first)...")


def inspect(ctx: typer.Context, cube: AnyCube = None, json_out: Json = False) -> None:
    """Tier distribution, states and a retention histogram."""
    from memos.lifecycle.inspection import inspect_store

    with open_memos(ctx) as memos:
        found = inspect_store(memos.core, cube)
    if json_out:
        print_json(found.to_dict())
        return
    tiers = table(f"tiers ({found.cube or 'all cubes'})", ["tier", "artifacts", "items", "MB", ""])
    for t in found.tiers:
        tiers.add_row(
            t.tier, str(t.artifacts or "-"), str(t.items), f"{t.bytes / 2**20:.1f}", t.detail
        )
    console.print(tiers)
    states = table("states", ["state", "items"])
    for name in State:
        states.add_row(name, str(found.by_state.get(name, 0)))
    console.print(states)
    console.print(
        f"pinned: {found.pinned}   mean stability: {found.mean_stability_days:.1f} days",
        highlight=False,
    )
    top = max(found.retention_bins) or 1
    console.print("retention")
    for n, count in reversed(list(enumerate(found.retention_bins))):
        bar = "█" * round(HIST_WIDTH * count / top)
        console.print(f"  {n / 10:.1f}-{(n + 1) / 10:.1f} {bar} {count}", highlight=False)


@plot_app.command("retention")
def plot_retention(
    ctx: typer.Context,
    item_ids: Annotated[list[str] | None, typer.Argument(help="Items to plot.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path(
        "retention.png"
    ),
    cube: Annotated[
        str, typer.Option("--cube", "-c", help="Cube (with --tag / --top).")
    ] = "default",
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Items with this tag.")
    ] = None,
    top: Annotated[int, typer.Option(help="Without ids: the N most recalled items.")] = 8,
    days: Annotated[float, typer.Option(help="Days past now to draw.")] = 30.0,
) -> None:
    """Retention curves over time for chosen items, with their recalls marked."""
    from memos.lifecycle.plots import MAX_ITEMS
    from memos.lifecycle.plots import plot_retention as draw

    with open_memos(ctx) as memos:
        ids = list(item_ids or [])
        if not ids:
            flt = {"tags": tag} if tag else None
            found = sorted(
                memos.iterate(cube=cube, filter=flt),
                key=lambda r: (-r.access_count, r.created_at),
            )
            ids = [r.id for r in found[: min(top, MAX_ITEMS)]]
        if not ids:
            raise CliError("no items to plot")
        path = draw(memos.core, ids, out, days)
    console.print(f"wrote {path} ({len(ids[:MAX_ITEMS])} item(s))")
