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


@audit_app.command("archive")
def audit_archive(
    tenant: Annotated[str, typer.Option(help="tenant slug")],
    before: Annotated[str, typer.Option(help="archive entries older than this (ISO 8601)")],
    output: Annotated[Path, typer.Option(help="the archive file to write (must not exist)")],
) -> None:
    """Retention: move entries older than --before to a JSON-lines archive, then remove them
    from the database (the chain's base moves with them, so `verify` still checks the rest)."""
    from steward.server.audit.retention import archive_before
    from steward.server.audit.service import record
    from steward.server.db.engine import create_engine, create_session_factory
    from steward.server.tenancy.service import get_tenant_by_slug

    cutoff = _parse_time(before, "--before")
    assert cutoff is not None
    if output.exists():
        err.print(f"[red]error[/red]: {output} exists; choose a new file")
        raise typer.Exit(2)

    async def main() -> Any:
        engine = create_engine(load_settings().effective_database_url)
        try:
            sessions = create_session_factory(engine, system=True)
            async with sessions() as session:
                found = await get_tenant_by_slug(session, tenant)
                with output.open("xb") as out:
                    result = await archive_before(session, found.id, cutoff, out)
            if result.count:
                await record(
                    sessions,
                    tenant_id=found.id,
                    actor="system:cli",
                    action="audit.archived",
                    result="success",
                    risk="medium",
                    detail={
                        "count": result.count,
                        "up_to_seq": result.up_to_seq,
                        "before": cutoff.isoformat(),
                        "file": output.name,
                        "sha256": result.sha256,
                    },
                )
            return result
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(main())
    except Exception as exc:
        raise fail(exc) from None
    typer.echo(
        f"{tenant}: archived {result.count} events up to #{result.up_to_seq} to {output} "
        f"(sha256 {result.sha256})"
    )
