"""Data layer on SQLite and PostgreSQL: migrations match the models, the tenant filter holds,
PINs are single use, the status buffer writes in batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import EnrollRequest, LightHeartbeat
from steward.server.db.base import utcnow
from steward.server.db.migrate import check
from steward.server.db.tenant_filter import TenantContextMissing, bind_system, bind_tenant
from steward.server.devices import enrollment
from steward.server.devices.models import Device, DeviceMetric, DeviceStatus
from steward.server.errors import Unauthorized
from steward.server.gateway.status import StatusBuffer
from steward.server.tenancy.models import Group, Tenant
from steward.server.tenancy.service import create_tenant

Sessions = async_sessionmaker[AsyncSession]
KEY = "data-layer-test-key"


def test_models_and_migrations_agree(database_url: str) -> None:
    check(database_url)  # raises when `alembic check` would find a difference


async def _tenant_with_device(sessions: Sessions) -> tuple[Tenant, str]:
    async with sessions() as session:
        tenant = await create_tenant(session, f"t{uuid.uuid4().hex[:8]}", "T")
        pin, _row, _group = await enrollment.create_pin(
            session, KEY, tenant, group_name=None, ttl_s=600, created_by="test"
        )
        response = await enrollment.enroll(
            session, KEY, EnrollRequest(pin=pin, machine_id=uuid.uuid4().hex, hostname="h")
        )
        await session.commit()
        return tenant, response.device_id


async def test_a_bound_session_sees_only_its_tenant(
    sessions: Sessions, system_sessions: Sessions
) -> None:
    tenant_a, device_a = await _tenant_with_device(system_sessions)
    _tenant_b, device_b = await _tenant_with_device(system_sessions)
    async with sessions() as session:
        bind_tenant(session, tenant_a.id)
        ids = set(await session.scalars(select(Device.id)))
        assert uuid.UUID(device_a) in ids and uuid.UUID(device_b) not in ids
        assert (
            await session.scalar(select(Device).where(Device.id == uuid.UUID(device_b)))
        ) is None
        names = {g.tenant_id for g in await session.scalars(select(Group))}
        assert names == {tenant_a.id}
        # joins are filtered too
        joined = await session.execute(
            select(Device.id, DeviceStatus.online).join(
                DeviceStatus, DeviceStatus.device_id == Device.id
            )
        )
        assert {row[0] for row in joined} == {uuid.UUID(device_a)}


async def test_a_bound_session_stamps_and_refuses_foreign_rows(
    sessions: Sessions, system_sessions: Sessions
) -> None:
    tenant_a, _ = await _tenant_with_device(system_sessions)
    tenant_b, _ = await _tenant_with_device(system_sessions)
    async with sessions() as session:
        bind_tenant(session, tenant_a.id)
        group = Group(name="stamped")
        session.add(group)
        await session.flush()
        assert group.tenant_id == tenant_a.id
        session.add(Group(name="foreign", tenant_id=tenant_b.id))
        with pytest.raises(PermissionError):
            await session.flush()
        await session.rollback()


async def test_pins_are_single_use_even_when_raced(system_sessions: Sessions) -> None:
    async with system_sessions() as session:
        tenant = await create_tenant(session, f"t{uuid.uuid4().hex[:8]}", "T")
        pin, _row, _group = await enrollment.create_pin(
            session, KEY, tenant, group_name=None, ttl_s=600, created_by="test"
        )
        await session.commit()

    async def attempt(machine: str) -> str:
        async with system_sessions() as session:
            try:
                await enrollment.enroll(
                    session, KEY, EnrollRequest(pin=pin, machine_id=machine, hostname=machine)
                )
                await session.commit()
                return "ok"
            except Unauthorized as exc:
                await session.rollback()
                return exc.code
            except Exception:  # SQLite may refuse the second writer outright
                await session.rollback()
                return "refused"

    outcomes = await asyncio.gather(attempt("m1"), attempt("m2"), attempt("m3"))
    assert outcomes.count("ok") == 1, outcomes


async def test_expired_pin_is_refused(system_sessions: Sessions) -> None:
    async with system_sessions() as session:
        tenant = await create_tenant(session, f"t{uuid.uuid4().hex[:8]}", "T")
        pin, row, _group = await enrollment.create_pin(
            session, KEY, tenant, group_name=None, ttl_s=600, created_by="test"
        )
        row.expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    async with system_sessions() as session:
        with pytest.raises(Unauthorized) as refused:
            await enrollment.enroll(
                session, KEY, EnrollRequest(pin=pin, machine_id="m", hostname="h")
            )
        assert refused.value.code == "pin_expired"


async def test_status_buffer_flushes_in_one_go_and_sweeps_silent_devices(
    system_sessions: Sessions,
) -> None:
    tenant, device = await _tenant_with_device(system_sessions)
    device_id = uuid.UUID(device)
    buffer = StatusBuffer(system_sessions, missed_heartbeats_offline=3)
    for cpu in (30, 20, 10):
        beat = LightHeartbeat(
            cpu_percent=cpu, memory_percent=20, uptime_s=5, ip_addresses=["10.1.1.1"]
        )
        buffer.seen(device_id, tenant.id, transport="ws", interval_s=0.1, heartbeat=beat)
    assert await buffer.flush() == 1
    assert await buffer.flush() == 0
    async with system_sessions() as session:
        status = await session.get(DeviceStatus, device_id)
        assert status is not None and status.online and status.cpu_percent == 10
        metrics = (
            await session.scalars(select(DeviceMetric).where(DeviceMetric.device_id == device_id))
        ).all()
        # One history point per device per flush: the newest sample.
        assert [m.cpu_percent for m in metrics] == [10]
    await asyncio.sleep(1.5)  # 3 missed 0.1 s intervals + 1 s grace
    assert await buffer.sweep_offline() >= 1
    async with system_sessions() as session:
        status = await session.get(DeviceStatus, device_id)
        assert status is not None and not status.online
    buffer.seen(device_id, tenant.id, transport="poll", interval_s=30)
    buffer.offline(device_id, tenant.id)
    await buffer.flush()
    async with system_sessions() as session:
        status = await session.get(DeviceStatus, device_id)
        assert status is not None and not status.online


async def test_status_flush_stores_every_value_as_the_orm_reads_it(
    system_sessions: Sessions,
) -> None:
    """The flush writes rows without the ORM (SQLite: one statement over a JSON array): what it
    stores must read back exactly, quotes and Korean names included, and a device seen only
    by presence gets the defaults a new row would have."""
    tenant, device = await _tenant_with_device(system_sessions)
    device_id = uuid.UUID(device)
    buffer = StatusBuffer(system_sessions, missed_heartbeats_offline=3)
    buffer.seen(device_id, tenant.id, transport="poll", interval_s=30)
    before = utcnow()
    await buffer.flush()
    async with system_sessions() as session:
        status = await session.get(DeviceStatus, device_id)
        assert status is not None and status.online and status.transport == "poll"
        assert status.ip_addresses == [] and status.logged_in_users == []
        assert status.cpu_percent is None
        assert status.last_seen is not None and status.offline_after is not None
        assert abs((status.last_seen - before).total_seconds()) < 5
        assert status.offline_after - status.last_seen == timedelta(seconds=91)
    users = ["o'brien", 'say "hi"', "김철수", "back\\slash"]
    beat = LightHeartbeat(
        cpu_percent=12.5, memory_percent=40.25, uptime_s=3600,
        ip_addresses=["10.0.0.7", "fe80::1"], logged_in_users=users,
    )  # fmt: skip
    buffer.seen(device_id, tenant.id, transport="ws", interval_s=2, heartbeat=beat)
    await buffer.flush()
    async with system_sessions() as session:
        status = await session.get(DeviceStatus, device_id)
        assert status is not None
        await session.refresh(status)
        assert (status.cpu_percent, status.memory_percent, status.uptime_s) == (12.5, 40.25, 3600)
        assert status.ip_addresses == ["10.0.0.7", "fe80::1"]
        assert status.logged_in_users == users
        assert status.transport == "ws" and status.heartbeat_interval_s == 2
        assert status.last_seen is not None and status.last_seen.tzinfo is not None
        metrics = (
            await session.scalars(select(DeviceMetric).where(DeviceMetric.device_id == device_id))
        ).all()
        assert [(m.cpu_percent, m.memory_percent) for m in metrics] == [(12.5, 40.25)]
        assert metrics[0].at == status.last_seen
        # Stored times compare with bound ones (the offline sweep relies on it).
        due = await session.scalar(
            select(func.count())
            .select_from(DeviceStatus)
            .where(DeviceStatus.device_id == device_id, DeviceStatus.offline_after > before)
        )
        assert due == 1


async def test_metrics_older_than_the_retention_are_pruned(system_sessions: Sessions) -> None:
    from steward.server.devices.service import prune_metrics

    tenant, device = await _tenant_with_device(system_sessions)
    now = utcnow()
    async with system_sessions() as session:
        for age_days in (30, 1):
            session.add(
                DeviceMetric(
                    tenant_id=tenant.id,
                    device_id=uuid.UUID(device),
                    at=now - timedelta(days=age_days),
                    cpu_percent=1,
                    memory_percent=1,
                )
            )
        await session.commit()
    async with system_sessions() as session:
        assert await prune_metrics(session, now - timedelta(days=14)) >= 1
        await session.commit()
    async with system_sessions() as session:
        left = (
            await session.scalars(
                select(DeviceMetric.at).where(DeviceMetric.device_id == uuid.UUID(device))
            )
        ).all()
        assert len(left) == 1 and left[0] > now - timedelta(days=2)


async def test_tenant_owned_queries_without_a_tenant_context_raise(
    sessions: Sessions, system_sessions: Sessions
) -> None:
    tenant, _device = await _tenant_with_device(system_sessions)
    async with sessions() as session:
        for statement in (select(Device), select(Group.name), select(DeviceStatus.online)):
            with pytest.raises(TenantContextMissing):
                await session.execute(statement)
        with pytest.raises(TenantContextMissing):
            await session.execute(update(Device).values(hostname="x"))
        assert (await session.scalar(select(Tenant.slug).where(Tenant.id == tenant.id))) == (
            tenant.slug
        )  # the tenants table itself is not tenant-owned
        session.add(Group(name="nowhere", tenant_id=tenant.id))
        with pytest.raises(TenantContextMissing):
            await session.flush()


async def test_a_session_context_cannot_be_switched(
    sessions: Sessions, system_sessions: Sessions
) -> None:
    tenant_a, _ = await _tenant_with_device(system_sessions)
    tenant_b, _ = await _tenant_with_device(system_sessions)
    async with sessions() as session:
        bind_tenant(session, tenant_a.id)
        bind_tenant(session, tenant_a.id)  # the same tenant again is fine
        with pytest.raises(PermissionError):
            bind_tenant(session, tenant_b.id)
        with pytest.raises(PermissionError):
            bind_system(session)
    async with system_sessions() as session:
        with pytest.raises(PermissionError):
            bind_tenant(session, tenant_a.id)


# Composite indexes that serve system work across tenants, where a leading tenant_id would not
# help: the gateway's per-device queue and the offline sweep over every tenant.
SYSTEM_INDEXES = {
    "ix_commands_device_status",
    "ix_device_status_online_offline_after",
    "ix_commands_status_expires",  # the expiry sweep, across tenants
}


def test_tenant_id_is_indexed_and_leads_composite_indexes() -> None:
    from steward.server.db.models import Base

    for table in Base.metadata.tables.values():
        if "tenant_id" not in table.c:
            continue
        indexes = [list(index.columns.keys()) for index in table.indexes]
        indexes.append(list(table.primary_key.columns.keys()))
        assert ["tenant_id"] in indexes or any(cols[0] == "tenant_id" for cols in indexes), (
            f"{table.name}: tenant_id is not indexed"
        )
        for index in table.indexes:
            columns = list(index.columns.keys())
            if len(columns) > 1 and index.name not in SYSTEM_INDEXES:
                assert columns[0] == "tenant_id", f"{table.name}.{index.name}: {columns}"
        for constraint in table.constraints:
            columns = [c.name for c in constraint.columns]
            if len(columns) > 1 and not constraint.name.startswith("fk_"):  # type: ignore[union-attr]
                assert columns[0] == "tenant_id", f"{table.name}: {constraint.name} {columns}"
