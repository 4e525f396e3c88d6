"""Service commands: ``memos keys``, ``memos serve`` and ``memos mcp``.

fastapi, uvicorn and mcp are imported inside the commands, so ``memos --help``
stays light.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer
from memos.cli.output import CliError, Json, console, err_console, open_memos, print_json, table

keys_app = typer.Typer(help="API keys of the service (bound to a tenant).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Attach the service commands to ``app``."""
    app.add_typer(keys_app, name="keys")
    app.command()(serve)
    app.command()(mcp)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: read, write, admin.")
    ] = "read,write",
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
    json_out: Json = False,
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""
    from memos.service import keys

    with open_memos(ctx) as memos:
        key, info = keys.create_key(
            memos.db, tenant, keys.parse_scopes(scopes), memos.clock.now(), name
        )
    if json_out:
        print_json({"key": key, **info.to_dict()})
        return
    console.print(f"key {info.id} for tenant {info.tenant} ({','.join(info.scopes)}):")
    typer.echo(key)
    err_console.print("store it now: it is not shown again")


@keys_app.command("ls")
def keys_ls(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    json_out: Json = False,
) -> None:
    """List API keys (ids, tenants, scopes; never the keys)."""
    from memos.service import keys

    with open_memos(ctx) as memos:
        found = keys.list_keys(memos.db, tenant)
    if json_out:
        print_json([k.to_dict() for k in found])
        return
    out = table(None, ["id", "tenant", "name", "scopes", "prefix", "created", "revoked"])
    for k in found:
        out.add_row(
            k.id,
            k.tenant,
            k.name or "",
            ",".join(k.scopes),
            k.prefix,
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        )
    console.print(out)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str, json_out: Json = False) -> None:
    """Revoke an API key (refused from the next request on, in every worker)."""
    from memos.service import keys

    with open_memos(ctx) as memos:
        info = keys.revoke_key(memos.db, key_id, memos.clock.now())
    if json_out:
        print_json(info.to_dict())
        return
    console.print(f"revoked key {info.id} of tenant {info.tenant}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8420,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No API keys: tenant 'local' (loopback only).")
    ] = False,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body (MiB).")] = 16.0,
    upstream_url: Annotated[
        str | None,
        typer.Option(
            envvar="MEMOS_UPSTREAM_URL",
            help="OpenAI-compatible base URL that answers /v1/chat/completions "
            "(key: MEMOS_UPSTREAM_API_KEY); default: the local model.",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API (/v1, /docs, /ui) and MCP over streamable HTTP (/mcp)."""
    import os

    from memos.service.openai_compat import Upstream
    from memos.service.server import run

    if workers < 1:
        raise CliError(f"--workers={workers}; allowed: 1 or more")
    if no_auth:
        if not is_loopback(host):
            raise CliError(
                f"--no-auth is refused on {host}: it is allowed only on a loopback address"
            )
        err_console.print(
            "[yellow]warning:[/yellow] --no-auth: every caller on this machine acts as tenant "
            "'local' with every scope"
        )
    options = ctx.find_root().obj or {}
    env = {
        "MEMOS_HOME": options.get("home"),
        "MEMOS_DATABASE_URL": options.get("database_url"),
        "MEMOS_EMBEDDER": options.get("embedder"),
    }
    for name, value in env.items():
        if value is not None:
            os.environ[name] = str(value)
    os.environ["MEMOS_SERVICE_NO_AUTH"] = "1" if no_auth else "0"
    os.environ["MEMOS_SERVICE_MAX_BODY"] = str(int(max_body_mb * 1024 * 1024))
    os.environ["MEMOS_UPSTREAM_URL"] = upstream_url or ""
    try:
        Upstream.from_env()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with open_memos(ctx) as memos:
        # bring the schema to head once, and reach the artifact store and the
        # Ray cluster, before the workers start: bad settings fail here, in one line
        memos.check_setup()
    run(host, port, workers)


def mcp(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option(help="Tenant whose memories the tools see.")] = "local",
) -> None:
    """Speak MCP over stdio (for desktop and IDE assistants)."""
    from memos.service.mcp_server import build_mcp_server
    from memos.service.mcp_stdio import run_stdio
    from memos.service.tenancy import TenantMemos

    with open_memos(ctx) as memos:
        run_stdio(build_mcp_server(lambda: TenantMemos(memos, tenant)))
