"""The hash chain: appends under concurrency, and verify catching every kind of tampering made
directly in the database."""

from __future__ import annotations

import asyncio
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit.models import AuditEvent
from steward.server.audit.service import record
from steward.server.audit.verify import Breach, verify_all, verify_chain
from tests.audit.helpers import new_tenant, record_events, tamper
from tests.support import run

Sessions = async_sessionmaker[AsyncSession]
STEWARD = [sys.executable, "-m", "steward.cli"]


async def _verify(system_sessions: Sessions, tenant_id: object) -> object:
    async with system_sessions() as session:
        return await verify_chain(session, tenant_id)  # type: ignore[arg-type]


async def test_concurrent_records_form_one_contiguous_chain(system_sessions: Sessions) -> None:
    tenant_id = await new_tenant(system_sessions)
    await asyncio.gather(
        *(
            record(
                system_sessions,
                tenant_id=tenant_id,
                actor="system:test",
                action="test.concurrent",
                result="success",
                detail={"n": n},
            )
            for n in range(50)
        )
    )
    async with system_sessions() as session:
        seqs = list(
            await session.scalars(
                select(AuditEvent.seq)
                .where(AuditEvent.tenant_id == tenant_id)
                .order_by(AuditEvent.seq)
            )
        )
        report = await verify_chain(session, tenant_id)
    assert seqs == list(range(1, 51))
    assert report.ok and report.checked == 50 and report.kind is None


async def test_an_empty_chain_is_intact(system_sessions: Sessions) -> None:
    tenant_id = await new_tenant(system_sessions)
    report = await _verify(system_sessions, tenant_id)
    assert report.ok and report.checked == 0  # type: ignore[attr-defined]


async def test_verify_streams_in_batches(
    system_sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steward.server.audit import verify

    monkeypatch.setattr(verify, "BATCH", 3)
    tenant_id = await new_tenant(system_sessions)
    await record_events(system_sessions, tenant_id, 10)
    report = await _verify(system_sessions, tenant_id)
    assert report.ok and report.checked == 10  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "kind", "seq"),
    [
        ("UPDATE audit_events SET detail = '{{\"number\": 99}}' WHERE id = {e2}", Breach.EDITED, 2),
        ("UPDATE audit_events SET result = 'success' WHERE id = {e2}", Breach.EDITED, 2),
        ("DELETE FROM audit_events WHERE id = {e3}", Breach.MISSING, 3),
        ("DELETE FROM audit_events WHERE id = {e5}", Breach.TRUNCATED, 5),
        (
            "UPDATE audit_events SET seq = -1 WHERE id = {e3};"
            "UPDATE audit_events SET seq = 3 WHERE id = {e4};"
            "UPDATE audit_events SET seq = 4 WHERE id = {e3}",
            Breach.REORDERED,
            3,
        ),
    ],
    ids=["edited detail", "edited result", "deleted middle", "deleted last", "swapped"],
)
async def test_verify_finds_direct_tampering(
    system_sessions: Sessions, database_url: str, change: str, kind: Breach, seq: int
) -> None:
    tenant_id = await new_tenant(system_sessions)
    events = await record_events(system_sessions, tenant_id, 5)
    ids = {f"e{e.seq}": e.id for e in events}
    before = await _verify(system_sessions, tenant_id)
    assert before.ok and before.checked == 5  # type: ignore[attr-defined]

    await tamper(database_url, *change.format(**ids).split(";"))

    report = await _verify(system_sessions, tenant_id)
    assert not report.ok  # type: ignore[attr-defined]
    assert (report.kind, report.first_bad_seq) == (kind, seq), report  # type: ignore[attr-defined]
    assert f"#{seq}" in report.message  # type: ignore[attr-defined]


async def test_a_missing_head_and_a_forged_tail_are_found(
    system_sessions: Sessions, database_url: str
) -> None:
    tenant_id = await new_tenant(system_sessions)
    events = await record_events(system_sessions, tenant_id, 3)
    hex_id = tenant_id.hex if "sqlite" in database_url else str(tenant_id)
    # Cutting the last row and the head's record of it together: the head is gone.
    await tamper(database_url, f"DELETE FROM audit_heads WHERE tenant_id = '{hex_id}'")
    report = await _verify(system_sessions, tenant_id)
    assert not report.ok and report.kind is Breach.TRUNCATED  # type: ignore[attr-defined]
    assert events  # (the rows are still there)


async def test_verify_all_reports_each_tenant(system_sessions: Sessions, database_url: str) -> None:
    intact, broken = await new_tenant(system_sessions), await new_tenant(system_sessions)
    await record_events(system_sessions, intact, 2)
    events = await record_events(system_sessions, broken, 3)
    await tamper(database_url, f"UPDATE audit_events SET action = 'x' WHERE id = {events[0].id}")
    async with system_sessions() as session:
        reports = {tenant.id: report for tenant, report in await verify_all(session)}
    assert reports[intact].ok and reports[intact].checked == 2
    assert not reports[broken].ok and reports[broken].first_bad_seq == 1


async def test_the_app_cannot_change_or_delete_events(
    system_sessions: Sessions, database_url: str
) -> None:
    tenant_id = await new_tenant(system_sessions)
    events = await record_events(system_sessions, tenant_id, 2)
    async with system_sessions() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(
                text("UPDATE audit_events SET result = 'success' WHERE id = :id"),
                {"id": events[1].id},
            )
    if "postgresql" in database_url:
        async with system_sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(
                    text("DELETE FROM audit_events WHERE id = :id"), {"id": events[1].id}
                )
    assert (await _verify(system_sessions, tenant_id)).ok  # type: ignore[attr-defined]


async def test_cli_verify_exit_codes(
    system_sessions: Sessions, database_url: str, tmp_path: object
) -> None:
    tenant_id = await new_tenant(system_sessions)
    events = await record_events(system_sessions, tenant_id, 4)
    async with system_sessions() as session:
        from steward.server.tenancy.service import get_tenant

        slug = (await get_tenant(session, tenant_id)).slug
    env = {"STEWARD_DATABASE_URL": database_url, "STEWARD_DATA_DIR": str(tmp_path)}
    import os

    env = os.environ | env
    ok = await asyncio.to_thread(run, [*STEWARD, "audit", "verify", "--tenant", slug], env=env)
    assert ok.returncode == 0, ok.stderr
    assert f"{slug}: ok 4 events" in ok.stdout

    await tamper(database_url, f"DELETE FROM audit_events WHERE id = {events[1].id}")
    broken = await asyncio.to_thread(run, [*STEWARD, "audit", "verify", "--tenant", slug], env=env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"{slug}: BROKEN at #2 (missing)" in broken.stdout
    everyone = await asyncio.to_thread(run, [*STEWARD, "audit", "verify"], env=env)
    assert everyone.returncode == 1 and f"{slug}: BROKEN at #2" in everyone.stdout
