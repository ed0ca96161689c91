"""`steward audit ...`: verify the hash chains, export a tenant's log."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from steward.cli._common import err, fail, run_or_fail
from steward.server.settings import load_settings

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[str | None, typer.Option(help="tenant slug [default: every tenant]")] = None,
) -> None:
    """Recompute every tenant's audit chain; exit 1 when one is broken."""
    from steward.server.audit.verify import verify_all, verify_chain
    from steward.server.tenancy.service import get_tenant_by_slug

    async def work(session: AsyncSession) -> Any:
        if tenant is None:
            return await verify_all(session)
        found = await get_tenant_by_slug(session, tenant)
        return [(found, await verify_chain(session, found.id))]

    broken = False
    for found, report in run_or_fail(load_settings(), work):
        if report.ok:
            typer.echo(f"{found.slug}: ok {report.checked} events")
            continue
        broken = True
        where = f"#{report.first_bad_seq}" if report.first_bad_seq is not None else "the head"
        typer.echo(f"{found.slug}: BROKEN at {where} ({report.kind}): {report.message}")
    if broken:
        raise typer.Exit(1)


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        err.print(f"[red]error[/red]: {option} is not an ISO 8601 time: {value!r}")
        raise typer.Exit(2) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@audit_app.command("export")
def audit_export(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    format: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    since: Annotated[
        str | None, typer.Option(help="from this time (ISO 8601, UTC if no zone)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="before this time (ISO 8601)")] = None,
    output: Annotated[Path | None, typer.Option(help="file to write [default: stdout]")] = None,
) -> None:
    """Export a tenant's audit events in chain order, as JSON lines or CSV."""
    from steward.server.audit.query import AuditFilter, ExportFormat

    try:
        export_format = ExportFormat(format.lower())
    except ValueError:
        err.print(f"[red]error[/red]: unknown format {format!r}: use jsonl or csv")
        raise typer.Exit(2) from None
    filters = AuditFilter(since=_parse_time(since, "--since"), until=_parse_time(until, "--until"))
    settings = load_settings()
    try:
        if output is None:
            count = asyncio.run(
                _export(settings.effective_database_url, tenant, filters, export_format, sys.stdout)
            )
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                count = asyncio.run(
                    _export(settings.effective_database_url, tenant, filters, export_format, handle)
                )
    except Exception as exc:
        raise fail(exc) from None
    err.print(f"{count} events exported")


async def _export(
    database_url: str, slug: str, filters: Any, export_format: Any, out: TextIO
) -> int:
    """Find the tenant in a system session, then read its log through a tenant-bound one."""
    from steward.server.audit.query import export_lines
    from steward.server.db.engine import create_engine, create_session_factory
    from steward.server.db.tenant_filter import bind_tenant
    from steward.server.tenancy.service import get_tenant_by_slug

    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine, system=True)() as system:
            tenant_id = (await get_tenant_by_slug(system, slug)).id
        count = -1 if export_format.value == "csv" else 0  # the CSV header is not an event
        async with create_session_factory(engine)() as session:
            bind_tenant(session, tenant_id)
            async for line in export_lines(session, filters, export_format):
                out.write(line)
                count += 1
        out.flush()
        return count
    finally:
        await engine.dispose()
