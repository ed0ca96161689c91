"""`steward`: the server's command line (database, tenants, groups, users, PINs, serving)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from steward.cli._common import err, run_or_fail
from steward.cli.audit import audit_app
from steward.cli.groups import group_app
from steward.cli.tenants import tenant_app
from steward.cli.users import command_app, user_app
from steward.server.settings import Settings, load_settings

app = typer.Typer(help="Steward server administration.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
pin_app = typer.Typer(help="Enrollment PINs.", no_args_is_help=True)
platform_admin_app = typer.Typer(help="Platform administrators.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(group_app, name="group")
app.add_typer(user_app, name="user")
app.add_typer(pin_app, name="pin")
app.add_typer(platform_admin_app, name="platform-admin")
app.add_typer(audit_app, name="audit")
app.add_typer(command_app, name="command")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database at STEWARD_DATABASE_URL to the latest schema."""
    from steward.server.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url, revision)
    err.print(f"database at revision {revision}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="reverse proxies (IPs or networks, comma-separated) whose X-Forwarded-For and "
            "X-Forwarded-Proto are believed [default: STEWARD_FORWARDED_ALLOW_IPS, else none]"
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="worker processes sharing the port; more than 1 needs PostgreSQL and "
            "STEWARD_REDIS_URL (the Redis bus joins them)",
        ),
    ] = 1,
) -> None:
    """Run the server (API, console and agent gateway)."""
    import uvicorn

    from steward.server.app import create_app

    configure_logging()
    overrides = {} if forwarded_allow_ips is None else {"forwarded_allow_ips": forwarded_allow_ips}
    settings = load_settings(**overrides)
    settings.effective_secret_key  # noqa: B018 - create the key file once, before serving
    options = uvicorn_options(host, port, forwarded_allow_ips=settings.forwarded_allow_ips)
    if workers > 1:
        refuse_workers_without_shared_state(settings)
        if forwarded_allow_ips is not None:  # each worker reads its settings from the environment
            os.environ["STEWARD_FORWARDED_ALLOW_IPS"] = forwarded_allow_ips
        # Each worker configures its logging from `log_config` (configure_logging is ours).
        options["log_config"] = worker_log_config()
        uvicorn.run("steward.server.app:create_app", factory=True, workers=workers, **options)
        return
    uvicorn.run(create_app(settings), **options)


def refuse_workers_without_shared_state(settings: Settings) -> None:
    """Several worker processes share nothing in memory: they need one database that takes
    writers from several processes, and the bus to wake each other."""
    if settings.is_sqlite:
        err.print(
            "[red]error[/red]: --workers needs PostgreSQL (STEWARD_DATABASE_URL): several "
            "writer processes on one SQLite file are not supported"
        )
        raise typer.Exit(2)
    if not settings.redis_url:
        err.print(
            "[red]error[/red]: --workers needs STEWARD_REDIS_URL: the Redis bus joins the "
            "worker processes (commands, presence, cache invalidation)"
        )
        raise typer.Exit(2)


def worker_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus Steward's logger as `configure_logging` sets it."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["steward"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["steward"] = {"class": "logging.StreamHandler", "formatter": "steward"}
    level = os.environ.get("STEWARD_LOG_LEVEL", "info").upper()
    config["loggers"]["steward"] = {"handlers": ["steward"], "level": level, "propagate": False}
    return config


def configure_logging() -> None:
    """Steward's own log lines go to stderr next to uvicorn's, at STEWARD_LOG_LEVEL."""
    import logging

    level = os.environ.get("STEWARD_LOG_LEVEL", "info").upper()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("steward")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def uvicorn_options(host: str, port: int, *, forwarded_allow_ips: str = "") -> dict[str, Any]:
    """Options for uvicorn. Forwarded headers are believed only from `forwarded_allow_ips`
    (the proxies in front, docs/deploy.md): from anyone else they would let a client choose
    the address that audit records and IP allow-lists see."""
    from steward.protocol import MAX_MESSAGE_BYTES

    trusted = ",".join(part.strip() for part in forwarded_allow_ips.split(",") if part.strip())
    return {
        "host": host,
        "port": port,
        "ws": "websockets-sansio",
        "ws_max_size": MAX_MESSAGE_BYTES,
        "ws_per_message_deflate": False,  # no per-connection compression buffers
        "ws_ping_interval": 30.0,
        "ws_ping_timeout": 30.0,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "server_header": False,
        "log_level": os.environ.get("STEWARD_LOG_LEVEL", "info").lower(),
        "timeout_graceful_shutdown": 5,
    }


@user_app.command("create")
def user_create(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    email: Annotated[str, typer.Option(help="login e-mail")],
    role: Annotated[str, typer.Option(help="ADMIN, PM, ENGINEER, DEPLOY_ENGINEER, VIEWER")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create a user. The password comes from STEWARD_PASSWORD or --password-stdin."""
    from steward.server.accounts import service
    from steward.server.accounts.models import Role
    from steward.server.tenancy.service import get_tenant_by_slug

    password = read_password(password_stdin)
    try:
        role_value = Role(role.upper())
    except ValueError:
        err.print(f"[red]error[/red]: unknown role {role!r}")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> Any:
        found = await get_tenant_by_slug(session, tenant)
        return await service.create_user(session, found, email, password, role_value)

    user = run_or_fail(load_settings(), work)
    typer.echo(f"user {user.email} created in {tenant} as {role_value}")


def read_password(from_stdin: bool) -> str:
    password = (
        sys.stdin.readline().rstrip("\n") if from_stdin else os.environ.get("STEWARD_PASSWORD", "")
    )
    if not password:
        err.print("[red]error[/red]: set STEWARD_PASSWORD or pass --password-stdin")
        raise typer.Exit(2)
    return password


@platform_admin_app.command("create")
def platform_admin_create(
    email: Annotated[str, typer.Argument(help="login e-mail")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create a platform administrator (manages tenants from the bare base domain).

    The password comes from STEWARD_PASSWORD or --password-stdin."""
    from steward.server.platform.service import create_platform_admin

    password = read_password(password_stdin)

    async def work(session: AsyncSession) -> Any:
        return await create_platform_admin(session, email, password)

    admin = run_or_fail(load_settings(), work)
    typer.echo(f"platform administrator {admin.email} created")


@pin_app.command("create")
def pin_create(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    group: Annotated[str | None, typer.Option(help="group the device joins")] = None,
    ttl: Annotated[
        int | None, typer.Option(help="seconds the PIN stays valid [default: STEWARD_PIN_TTL_S]")
    ] = None,
) -> None:
    """Create a single-use enrollment PIN. The PIN alone is printed on the last line."""
    from steward.server.devices.enrollment import create_pin
    from steward.server.tenancy.service import get_tenant_by_slug

    settings = load_settings()

    async def work(session: AsyncSession) -> Any:
        found = await get_tenant_by_slug(session, tenant)
        return await create_pin(
            session,
            settings.effective_secret_key,
            found,
            group_name=group,
            ttl_s=ttl or settings.pin_ttl_s,
            created_by="cli",
        )

    pin, row, group_row = run_or_fail(settings, work)
    typer.echo(
        f"PIN for tenant {tenant}, group {group_row.name}, "
        f"valid until {row.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    typer.echo(pin)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    with_agent: Annotated[bool, typer.Option(help="enroll and run a local agent")] = True,
) -> None:
    """Set up a demo installation and run it: migrate, create tenant `demo` and an admin,
    enroll a local agent, serve. Ctrl-C stops everything."""
    from steward.server.demo import run_demo

    raise typer.Exit(run_demo(load_settings(), host, port, with_agent=with_agent))
