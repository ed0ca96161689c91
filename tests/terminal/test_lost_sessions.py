"""The leader's sweep of sessions no replica holds any more (its replica crashed), on SQLite and
PostgreSQL: closed as `server_lost` with the stored recording's SHA-256, audited once."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit.models import AuditEvent
from steward.server.bus.store import redis_client
from steward.server.db.base import utcnow
from steward.server.files.store import TenantStore
from steward.server.terminal.holdings import RedisSessionHoldings, SessionHoldings
from steward.server.terminal.models import SessionStatus, TerminalPolicy, TerminalSession
from steward.server.terminal.recording import Recording, recording_path
from steward.server.terminal.service import close_lost_sessions
from tests.tenancy.helpers import make_device, make_tenant

Sessions = async_sessionmaker[AsyncSession]


class Unknown(SessionHoldings):
    """Holdings that cannot be read (Redis down)."""

    async def all_held(self) -> set[uuid.UUID] | None:
        return None


async def _session(
    sessions: Sessions, data_dir: Path, *, age_s: float, status: str = SessionStatus.OPEN
) -> uuid.UUID:
    async with sessions() as session:
        tenant = await make_tenant(session, admin=False)
        device_id = await make_device(session, tenant)
        if age_s > 3600:
            session.add(TerminalPolicy(tenant_id=tenant.id, idle_timeout_s=900,
                                       max_duration_s=3600))  # fmt: skip
        row = TerminalSession(
            id=uuid.uuid4(),
            tenant_id=tenant.id,
            device_id=device_id,
            user_email="owner@example.test",
            started_at=utcnow() - timedelta(seconds=age_s),
            status=status,
            recording_group_id=uuid.uuid4(),
        )
        row.recording_path = recording_path(row.id)
        session.add(row)
        await session.commit()
    assert row.recording_group_id is not None
    recording = Recording(TenantStore(data_dir, tenant.id), row.recording_group_id,
                          row.recording_path)  # fmt: skip
    recording.start(width=80, height=24, timestamp=1, env={}, title="t")
    recording.output(0.5, "half a line when the replica died")
    recording.abandon()  # never closed properly
    return row.id


async def _row(sessions: Sessions, session_id: uuid.UUID) -> TerminalSession:
    async with sessions() as session:
        return await session.get_one(TerminalSession, session_id)


async def _audited(sessions: Sessions, session_id: uuid.UUID) -> list[AuditEvent]:
    async with sessions() as session:
        found = await session.scalars(
            select(AuditEvent).where(AuditEvent.target == str(session_id))
        )
        return list(found.all())


async def test_sessions_no_replica_holds_are_closed_with_their_hash(
    system_sessions: Sessions, data_dir: Path
) -> None:
    lost = await _session(system_sessions, data_dir, age_s=300)
    never_opened = await _session(system_sessions, data_dir, age_s=300, status="opening")
    held = await _session(system_sessions, data_dir, age_s=300)
    young = await _session(system_sessions, data_dir, age_s=5)
    holdings = SessionHoldings()
    holdings.held(held)

    assert await close_lost_sessions(system_sessions, holdings, data_dir) >= 2
    assert await close_lost_sessions(system_sessions, holdings, data_dir) == 0

    row = await _row(system_sessions, lost)
    assert (row.status, row.close_reason) == ("closed", "server_lost")
    assert row.ended_at is not None and row.error
    assert row.recording_group_id is not None
    stored = TenantStore(data_dir, row.tenant_id).resolve(
        row.recording_group_id, row.recording_path
    )
    content = stored.read_bytes()
    assert row.recording_sha256 == hashlib.sha256(content).hexdigest()
    assert row.recording_bytes == len(content)
    [closed] = await _audited(system_sessions, lost)
    assert closed.action == "terminal.close" and closed.actor == "system"
    assert closed.detail["sha256"] == row.recording_sha256
    assert closed.detail["reason"] == "server_lost"

    row = await _row(system_sessions, never_opened)
    assert (row.status, row.close_reason) == ("failed", "server_lost")
    assert [e.action for e in await _audited(system_sessions, never_opened)] == [
        "terminal.open_failed"
    ]
    for untouched in (held, young):
        assert (await _row(system_sessions, untouched)).status == "open"
        assert await _audited(system_sessions, untouched) == []


async def test_without_holdings_only_sessions_past_their_maximum_are_closed(
    system_sessions: Sessions, data_dir: Path
) -> None:
    recent = await _session(system_sessions, data_dir, age_s=300)
    ancient = await _session(system_sessions, data_dir, age_s=2 * 3600)  # maximum: 1 h

    await close_lost_sessions(system_sessions, Unknown(), data_dir)

    assert (await _row(system_sessions, recent)).status == "open"
    row = await _row(system_sessions, ancient)
    assert (row.status, row.close_reason) == ("closed", "server_lost")


async def test_replicas_share_what_they_hold_through_redis(redis_url: str) -> None:
    client = redis_client(redis_url)
    prefix = f"steward-test-{uuid.uuid4().hex[:12]}"
    a = RedisSessionHoldings(client, "replica-a", prefix=prefix, ttl_s=1.0)
    b = RedisSessionHoldings(client, "replica-b", prefix=prefix, ttl_s=1.0)
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        a.held(first)
        b.held(second)
        await a.flush()
        await b.flush()
        assert await a.all_held() == {first, second}
        b.released(second)
        await b.flush()
        assert await a.all_held() == {first}
        await asyncio.sleep(1.2)  # A died: its key expires
        assert await b.all_held() == set()
    finally:
        await client.delete(f"{prefix}:terminal-holdings:replica-a")
        await client.aclose()
