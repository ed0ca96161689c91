"""`check_tenants` on SQLite and PostgreSQL: planted problems are found, a clean tenant is not."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from steward.server.accounts.models import User
from steward.server.devices.models import Device
from steward.server.tenancy.checks import check_tenants
from steward.server.tenancy.service import get_group, tenants_dir
from tests.support import make_settings
from tests.tenancy.helpers import Sessions, make_device, make_tenant, new_slug


async def test_check_finds_planted_problems(
    sessions: Sessions, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path)
    async with sessions() as session:
        healthy = await make_tenant(session)
        await make_device(session, healthy)
        no_admin = await make_tenant(session, admin=False)
        inactive_admin = await make_tenant(session)
        await session.execute(
            update(User).where(User.tenant_id == inactive_admin.id).values(is_active=False)
        )
        misgrouped = await make_tenant(session)
        device_id = await make_device(session, misgrouped)
        foreign_group = await get_group(session, healthy.id, "all")
        await session.execute(
            update(Device).where(Device.id == device_id).values(group_id=foreign_group.id)
        )
        await session.commit()
    orphan = new_slug()
    (tenants_dir(settings) / orphan).mkdir(parents=True)
    (tenants_dir(settings) / str(healthy.id)).mkdir()

    async with sessions() as session:
        findings = await check_tenants(session, settings)
    found = {(f.code, f.tenant) for f in findings}
    assert ("no_active_admin", no_admin.slug) in found
    assert ("no_active_admin", inactive_admin.slug) in found
    assert ("device_group_foreign", misgrouped.slug) in found
    assert ("orphan_directory", orphan) in found
    assert not [f for f in findings if f.tenant == healthy.slug]
    assert all(f.message for f in findings)


async def test_check_without_a_tenants_dir(
    sessions: Sessions, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path)
    async with sessions() as session:
        tenant = await make_tenant(session)
        await session.commit()
        findings = await check_tenants(session, settings)
    assert not [f for f in findings if f.tenant == tenant.slug or f.code == "orphan_directory"]
