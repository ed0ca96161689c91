"""`steward group ...`: the device groups of one tenant."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from steward.cli._common import run_or_fail
from steward.cli.tenants import print_table
from steward.server.settings import load_settings

group_app = typer.Typer(help="Device groups of a tenant.", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", help="tenant slug")]


@group_app.command("create")
def group_create(name: str, tenant: TenantOption) -> None:
    """Create a group."""
    from steward.server.tenancy import groups
    from steward.server.tenancy.service import get_tenant_by_slug

    async def work(session: AsyncSession) -> Any:
        found = await get_tenant_by_slug(session, tenant)
        return await groups.create_group(session, found.id, name)

    group = run_or_fail(load_settings(), work)
    typer.echo(f"group {group.name} created in {tenant}")


@group_app.command("list")
def group_list(tenant: TenantOption) -> None:
    """List the tenant's groups with their device counts."""
    from steward.server.tenancy import groups
    from steward.server.tenancy.service import get_tenant_by_slug

    async def work(session: AsyncSession) -> list[groups.GroupSummary]:
        found = await get_tenant_by_slug(session, tenant)
        return await groups.list_groups(session, found.id)

    summaries = run_or_fail(load_settings(), work)
    print_table(["GROUP", "DEVICES"], [[s.group.name, str(s.devices)] for s in summaries])


@group_app.command("rename")
def group_rename(name: str, new_name: str, tenant: TenantOption) -> None:
    """Rename a group (not the default group `all`)."""
    from steward.server.tenancy import groups
    from steward.server.tenancy.service import get_tenant_by_slug

    async def work(session: AsyncSession) -> Any:
        found = await get_tenant_by_slug(session, tenant)
        return await groups.rename_group(session, found.id, name, new_name)

    group = run_or_fail(load_settings(), work)
    typer.echo(f"group {name} renamed to {group.name}")


@group_app.command("delete")
def group_delete(
    name: str,
    tenant: TenantOption,
    move_to: Annotated[
        str | None, typer.Option(help="group its devices move to (required if it has any)")
    ] = None,
) -> None:
    """Delete a group (not the default group `all`)."""
    from steward.server.tenancy import groups
    from steward.server.tenancy.service import get_tenant_by_slug

    async def work(session: AsyncSession) -> int:
        found = await get_tenant_by_slug(session, tenant)
        return await groups.delete_group(session, found.id, name, move_to=move_to)

    moved = run_or_fail(load_settings(), work)
    suffix = f"; {moved} device(s) moved to {move_to}" if moved else ""
    typer.echo(f"group {name} deleted{suffix}")
