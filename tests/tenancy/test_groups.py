"""Group services on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from steward.server.devices.models import Device
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.tenancy import groups
from steward.server.tenancy.models import Group
from steward.server.tenancy.service import get_group
from tests.tenancy.helpers import Sessions, count_queries, make_device, make_tenant


async def test_create_and_list_with_device_counts(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        other = await make_tenant(session)
        await groups.create_group(session, tenant.id, " lab ")
        await groups.create_group(session, tenant.id, "Admin Office")
        await groups.create_group(session, other.id, "lab")  # same name, other tenant: fine
        await make_device(session, tenant, group="lab")
        await make_device(session, tenant, group="lab")
        await make_device(session, tenant)
        await session.commit()
    async with sessions() as session:
        with count_queries(sessions) as queries:
            listed = await groups.list_groups(session, tenant.id)
        assert len(queries) == 1, queries
    assert [(s.group.name, s.devices) for s in listed] == [
        ("all", 1),
        ("Admin Office", 0),
        ("lab", 2),
    ]


@pytest.mark.parametrize(
    ("name", "error"), [("lab", Conflict), ("a/b", InvalidInput), ("", InvalidInput)]
)
async def test_create_refuses(sessions: Sessions, name: str, error: type[Exception]) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await groups.create_group(session, tenant.id, "lab")
        with pytest.raises(error) as refused:
            await groups.create_group(session, tenant.id, name)
        assert getattr(refused.value, "code", "") in {"group_exists", "invalid_group"}


async def test_rename(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await groups.create_group(session, tenant.id, "lab")
        await groups.create_group(session, tenant.id, "office")
        device_id = await make_device(session, tenant, group="lab")
        await session.commit()
    async with sessions() as session:
        renamed = await groups.rename_group(session, tenant.id, "lab", "science lab")
        await session.commit()
    async with sessions() as session:
        device = await session.get(Device, device_id)
        assert device is not None and device.group_id == renamed.id
        assert (await get_group(session, tenant.id, "science lab")).id == renamed.id
        refusals: list[tuple[str, str, str]] = [
            ("all", "everything", "default_group"),
            ("science lab", "office", "group_exists"),
            ("science lab", "all", "group_exists"),
            ("missing", "x", "group_not_found"),
            ("office", "a/b", "invalid_group"),
        ]
        for name, new_name, code in refusals:
            with pytest.raises((InvalidInput, Conflict, NotFound)) as refused:
                await groups.rename_group(session, tenant.id, name, new_name)
            assert refused.value.code == code, (name, new_name)


async def test_delete_an_empty_group(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await groups.create_group(session, tenant.id, "spare")
        await session.commit()
    async with sessions() as session:
        assert await groups.delete_group(session, tenant.id, "spare") == 0
        await session.commit()
    async with sessions() as session:
        with pytest.raises(NotFound):
            await get_group(session, tenant.id, "spare")


async def test_delete_a_group_with_devices_moves_them(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        await groups.create_group(session, tenant.id, "office")
        first = await make_device(session, tenant, group="lab")
        second = await make_device(session, tenant, group="lab")
        await session.commit()
    async with sessions() as session:
        with pytest.raises(Conflict) as refused:
            await groups.delete_group(session, tenant.id, "lab")
        assert refused.value.code == "group_not_empty"
        with pytest.raises(InvalidInput) as same:
            await groups.delete_group(session, tenant.id, "lab", move_to="lab")
        assert same.value.code == "same_group"
        with pytest.raises(NotFound) as missing:
            await groups.delete_group(session, tenant.id, "lab", move_to="nowhere")
        assert missing.value.code == "group_not_found"
        assert await groups.delete_group(session, tenant.id, "lab", move_to="office") == 2
        await session.commit()
    async with sessions() as session:
        office = await get_group(session, tenant.id, "office")
        for device_id in (first, second):
            device = await session.get(Device, device_id)
            assert device is not None and device.group_id == office.id


async def test_the_default_group_cannot_be_deleted(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        with pytest.raises(InvalidInput) as refused:
            await groups.delete_group(session, tenant.id, "all", move_to="x")
        assert refused.value.code == "default_group"
        with pytest.raises(NotFound):
            await groups.delete_group(session, tenant.id, "never-made")


async def test_move_device_stays_within_its_tenant(sessions: Sessions) -> None:
    async with sessions() as session:
        tenant = await make_tenant(session)
        other = await make_tenant(session)
        await groups.create_group(session, other.id, "elsewhere")
        await groups.create_group(session, tenant.id, "lab")
        device_id = await make_device(session, tenant)
        await session.commit()
    async with sessions() as session:
        moved = await groups.move_device(session, device_id, "lab")
        lab = await get_group(session, tenant.id, "lab")
        assert moved.group_id == lab.id
        with pytest.raises(NotFound) as foreign:
            await groups.move_device(session, device_id, "elsewhere")
        assert foreign.value.code == "group_not_found"
        with pytest.raises(NotFound) as no_device:
            await groups.move_device(session, uuid.uuid4(), "lab")
        assert no_device.value.code == "device_not_found"
        await session.commit()
    async with sessions() as session:
        device = await session.get(Device, device_id)
        group = await session.get(Group, device.group_id) if device else None
        assert group is not None and group.name == "lab"
