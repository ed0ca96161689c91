"""Tenant services on SQLite and PostgreSQL: listing with counts, profile, status, deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from steward.server.accounts.models import User
from steward.server.devices.models import Device, DeviceStatus
from steward.server.errors import InvalidInput, NotFound
from steward.server.tenancy import service
from steward.server.tenancy.models import Group, Tenant, TenantStatus
from tests.support import make_settings
from tests.tenancy.helpers import Sessions, count_queries, make_device, make_tenant


async def test_list_counts_devices_and_online_in_one_query(sessions: Sessions) -> None:
    async with sessions() as session:
        busy = await make_tenant(session)
        for online in (True, True, False):
            await make_device(session, busy, online=online)
        idle = await make_tenant(session)
        await session.commit()
    async with sessions() as session:
        with count_queries(sessions) as queries:
            summaries = {s.tenant.slug: s for s in await service.list_tenants(session)}
        assert len(queries) == 1, queries
    assert (summaries[busy.slug].devices, summaries[busy.slug].online) == (3, 2)
    assert (summaries[idle.slug].devices, summaries[idle.slug].online) == (0, 0)
    slugs = list(summaries)
    assert slugs == sorted(slugs)


async def test_describe_counts_groups_and_users(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await make_device(session, tenant, group="lab", online=True)
        await session.commit()
    async with sessions() as session:
        detail = await service.describe_tenant(session, tenant.slug.upper())
        assert (detail.devices, detail.online, detail.groups, detail.users) == (1, 1, 2, 1)
        with pytest.raises(NotFound) as missing:
            await service.describe_tenant(session, "no-such-tenant")
        assert missing.value.code == "tenant_not_found"


async def test_update_changes_only_the_fields_given(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await session.commit()
    async with sessions() as session:
        await service.update_tenant(
            session,
            tenant.slug,
            name="  Seoul School ",
            locale="ko",
            timezone="Asia/Seoul",
            business_registration_number="123-45-67890",
            contact_name="Kim",
            contact_phone="+82 2-123-4567",
            contact_email="IT@School.example",
            address="1 Main St",
            notes="line one\nline two",
        )
        await session.commit()
    async with sessions() as session:
        await service.update_tenant(session, tenant.slug, contact_name="")
        await session.commit()
    async with sessions() as session:
        found = await service.get_tenant_by_slug(session, tenant.slug)
        assert (found.name, found.locale, found.timezone) == ("Seoul School", "ko", "Asia/Seoul")
        assert found.business_registration_number == "123-45-67890"
        assert found.contact_name == ""
        assert (found.contact_phone, found.contact_email) == ("+82 2-123-4567", "it@school.example")
        assert (found.address, found.notes) == ("1 Main St", "line one\nline two")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"locale": "fr"}, "invalid_locale"),
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"name": "  "}, "invalid_name"),
        ({"contact_email": "not-an-address"}, "invalid_email"),
        ({"contact_phone": "call me"}, "invalid_profile"),
        ({"business_registration_number": "#!"}, "invalid_profile"),
        ({"address": "x" * 501}, "invalid_profile"),
        ({"status": "disabled"}, "invalid_field"),
    ],
)
async def test_update_refuses_bad_values(
    sessions: Sessions, fields: dict[str, str], code: str
) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await session.commit()
    async with sessions() as session:
        with pytest.raises(InvalidInput) as refused:
            await service.update_tenant(session, tenant.slug, **fields)
        assert refused.value.code == code
        await session.rollback()
    async with sessions() as session:
        found = await service.get_tenant_by_slug(session, tenant.slug)
        assert (found.locale, found.timezone, found.name) == ("en", "UTC", tenant.name)


async def test_update_of_an_unknown_tenant(sessions: Sessions) -> None:
    async with sessions() as session:
        with pytest.raises(NotFound) as missing:
            await service.update_tenant(session, "nope", name="x")
        assert missing.value.code == "tenant_not_found"


async def test_disable_and_enable(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await session.commit()
    async with sessions() as session:
        disabled = await service.set_tenant_status(session, tenant.slug, "disabled")
        assert disabled.status == TenantStatus.DISABLED
        await session.commit()
    async with sessions() as session:
        assert (await service.get_tenant_by_slug(session, tenant.slug)).status == "disabled"
        await service.set_tenant_status(session, tenant.slug, "active")
        with pytest.raises(InvalidInput) as refused:
            await service.set_tenant_status(session, tenant.slug, "paused")
        assert refused.value.code == "invalid_status"
        await session.commit()
    async with sessions() as session:
        assert (await service.get_tenant_by_slug(session, tenant.slug)).status == "active"


async def test_delete_removes_rows_and_files(
    sessions: Sessions, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path)
    async with sessions() as session:
        doomed = await make_tenant(session)
        await make_device(session, doomed, group="lab", online=True)
        kept = await make_tenant(session)
        await make_device(session, kept)
        await session.commit()
    files = service.tenants_dir(settings) / str(doomed.id)
    (files / "uploads").mkdir(parents=True)
    (files / "uploads" / "report.txt").write_text("x")
    kept_files = service.tenants_dir(settings) / str(kept.id)
    kept_files.mkdir()

    async with sessions() as session:
        await service.delete_tenant(session, settings, doomed.slug)
        await session.commit()

    assert not files.exists() and kept_files.is_dir()
    async with sessions() as session:
        for model in (Group, Device, DeviceStatus, User):
            remaining = await session.scalar(
                select(func.count()).select_from(model).where(model.tenant_id == doomed.id)
            )
            assert remaining == 0, model
        assert await session.get(Tenant, doomed.id) is None
        assert (await service.describe_tenant(session, kept.slug)).devices == 1
        with pytest.raises(NotFound):
            await service.delete_tenant(session, settings, doomed.slug)


async def test_delete_without_a_files_dir(
    sessions: Sessions, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path)
    async with sessions() as session:
        tenant = await make_tenant(session)
        await session.commit()
    async with sessions() as session:
        await service.delete_tenant(session, settings, tenant.slug)
        await session.commit()
    async with sessions() as session:
        assert await session.get(Tenant, tenant.id) is None


@pytest.mark.parametrize("slug", ["../data", "..", "a/b", "Not A Slug!", ""])
async def test_delete_refuses_a_bad_slug(
    sessions: Sessions, database_url: str, tmp_path: Path, slug: str
) -> None:
    settings = make_settings(database_url, tmp_path)
    async with sessions() as session:
        with pytest.raises(InvalidInput) as refused:
            await service.delete_tenant(session, settings, slug)
        assert refused.value.code == "invalid_slug"


async def test_delete_refuses_a_files_dir_that_leads_elsewhere(
    sessions: Sessions, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path / "data")
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x")
    async with sessions() as session:
        tenant = await make_tenant(session)
        await session.commit()
    service.tenants_dir(settings).mkdir(parents=True)
    (service.tenants_dir(settings) / str(tenant.id)).symlink_to(elsewhere)

    async with sessions() as session:
        with pytest.raises(InvalidInput) as refused:
            await service.delete_tenant(session, settings, tenant.slug)
        assert refused.value.code == "unsafe_path"
        await session.rollback()
    assert (elsewhere / "keep.txt").exists()
    async with sessions() as session:
        assert await session.get(Tenant, tenant.id) is not None
