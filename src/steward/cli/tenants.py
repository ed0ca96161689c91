"""`steward tenant ...`: create, list, show, update, disable, enable, delete, check."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from steward.cli._common import err, run_or_fail
from steward.server.settings import load_settings

tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)

Slug = Annotated[str, typer.Argument(help="tenant slug")]


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell: readable, and easy to read back in scripts."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    for line in [headers, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


@tenant_app.command("create")
def tenant_create(
    slug: str,
    name: Annotated[str, typer.Option(help="display name")],
    locale: Annotated[str, typer.Option(help="console language: en or ko")] = "en",
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Asia/Seoul")] = "UTC",
) -> None:
    """Create a tenant (with its default group `all`)."""
    from steward.server.tenancy import service

    async def work(session: AsyncSession) -> Any:
        return await service.create_tenant(session, slug, name, locale=locale, timezone=timezone)

    tenant = run_or_fail(load_settings(), work)
    typer.echo(f"tenant {tenant.slug} created ({tenant.id})")


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants with their device and online counts."""
    from steward.server.tenancy import service

    summaries = run_or_fail(load_settings(), service.list_tenants)
    print_table(
        ["SLUG", "NAME", "STATUS", "DEVICES", "ONLINE"],
        [
            [s.tenant.slug, s.tenant.name, s.tenant.status, str(s.devices), str(s.online)]
            for s in summaries
        ],
    )


@tenant_app.command("show")
def tenant_show(slug: Slug) -> None:
    """Show a tenant's profile and counts."""
    from steward.server.tenancy import service

    async def work(session: AsyncSession) -> service.TenantDetail:
        return await service.describe_tenant(session, slug)

    detail = run_or_fail(load_settings(), work)
    tenant = detail.tenant
    fields = [
        ("slug", tenant.slug),
        ("name", tenant.name),
        ("status", tenant.status),
        ("locale", tenant.locale),
        ("timezone", tenant.timezone),
        ("created", f"{tenant.created_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("business registration number", tenant.business_registration_number),
        ("contact name", tenant.contact_name),
        ("contact phone", tenant.contact_phone),
        ("contact e-mail", tenant.contact_email),
        ("address", tenant.address),
        ("notes", tenant.notes),
        ("devices", str(detail.devices)),
        ("online", str(detail.online)),
        ("groups", str(detail.groups)),
        ("users", str(detail.users)),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        typer.echo(f"{label.ljust(width)}  {value}".rstrip())


@tenant_app.command("update")
def tenant_update(
    slug: Slug,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    locale: Annotated[str | None, typer.Option(help="console language: en or ko")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Asia/Seoul")] = None,
    brn: Annotated[str | None, typer.Option(help="business registration number")] = None,
    contact_name: Annotated[str | None, typer.Option(help="contact person")] = None,
    contact_phone: Annotated[str | None, typer.Option(help="contact phone number")] = None,
    contact_email: Annotated[str | None, typer.Option(help="contact e-mail")] = None,
    address: Annotated[str | None, typer.Option(help="postal address")] = None,
    notes: Annotated[str | None, typer.Option(help="free-form notes")] = None,
) -> None:
    """Change a tenant's name, locale, time zone or profile.

    An empty value clears a profile field; options not given stay as they are."""
    from steward.server.tenancy import service

    given = {
        "name": name,
        "locale": locale,
        "timezone": timezone,
        "business_registration_number": brn,
        "contact_name": contact_name,
        "contact_phone": contact_phone,
        "contact_email": contact_email,
        "address": address,
        "notes": notes,
    }
    fields = {field: value for field, value in given.items() if value is not None}
    if not fields:
        err.print("[red]error[/red]: nothing to update; see --help")
        raise typer.Exit(2)

    async def work(session: AsyncSession) -> Any:
        return await service.update_tenant(session, slug, **fields)

    tenant = run_or_fail(load_settings(), work)
    typer.echo(f"tenant {tenant.slug} updated ({', '.join(fields)})")


def _set_status(slug: str, status: str) -> None:
    from steward.server.tenancy import service

    async def work(session: AsyncSession) -> Any:
        return await service.set_tenant_status(session, slug, status)

    tenant = run_or_fail(load_settings(), work)
    typer.echo(f"tenant {tenant.slug} {tenant.status}")


@tenant_app.command("disable")
def tenant_disable(slug: Slug) -> None:
    """Disable a tenant: its users cannot log in, its agents and PINs are refused."""
    _set_status(slug, "disabled")


@tenant_app.command("enable")
def tenant_enable(slug: Slug) -> None:
    """Enable a disabled tenant again."""
    _set_status(slug, "active")


@tenant_app.command("delete")
def tenant_delete(
    slug: Slug,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a tenant with everything it owns, files included.

    Irreversible: asks you to type the slug again unless --yes."""
    from steward.server.tenancy import service

    if not yes:
        typed = typer.prompt(f"This deletes tenant {slug} and everything it owns. Type its slug")
        if typed.strip() != slug:
            err.print("[red]error[/red]: the slug typed does not match; nothing deleted")
            raise typer.Exit(1)
    settings = load_settings()

    async def work(session: AsyncSession) -> Any:
        return await service.delete_tenant(session, settings, slug)

    tenant = run_or_fail(settings, work)
    typer.echo(f"tenant {tenant.slug} deleted")


@tenant_app.command("check")
def tenant_check() -> None:
    """Look for inconsistencies across tenants; exit 1 when there are any.

    Devices in a missing or foreign group, tenants without an active ADMIN, files of tenants
    that no longer exist."""
    from steward.server.tenancy.checks import check_tenants

    settings = load_settings()

    async def work(session: AsyncSession) -> Any:
        return await check_tenants(session, settings)

    findings = run_or_fail(settings, work)
    if not findings:
        typer.echo("no problems found")
        return
    print_table(["PROBLEM", "TENANT", "DETAILS"], [[f.code, f.tenant, f.message] for f in findings])
    raise typer.Exit(1)
