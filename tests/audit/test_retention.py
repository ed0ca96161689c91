"""Retention: old entries go to an archive file first, then leave the table; the rest of the
chain still verifies, and the archive's lines chain to each other."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit.chain import GENESIS, entry_hash
from steward.server.audit.models import AuditEvent
from steward.server.audit.verify import Breach, verify_chain
from steward.server.db.base import utcnow
from steward.server.tenancy.service import get_tenant
from tests.audit.helpers import new_tenant, record_events, tamper
from tests.support import run

Sessions = async_sessionmaker[AsyncSession]
STEWARD = [sys.executable, "-m", "steward.cli"]


def _chained(lines: list[dict[str, object]]) -> bool:
    previous = GENESIS
    for line in lines:
        fields = {
            k: line[k] for k in ("actor", "actor_name", "address", "user_agent", "action", "target")
        }
        digest = entry_hash(
            prev_hash=previous,
            tenant_id=line["tenant"],  # type: ignore[arg-type]
            seq=line["seq"],  # type: ignore[arg-type]
            at=line["at_dt"],  # type: ignore[arg-type]
            device_id=None,
            result=line["result"],  # type: ignore[arg-type]
            risk=line["risk"],  # type: ignore[arg-type]
            detail=line["detail"],  # type: ignore[arg-type]
            **fields,  # type: ignore[arg-type]
        )
        if line["prev_hash"] != previous or digest != line["hash"]:
            return False
        previous = digest
    return True


async def test_archive_then_remove_keeps_the_chain_verifiable(
    system_sessions: Sessions, database_url: str, tmp_path: Path
) -> None:
    from datetime import datetime

    tenant_id = await new_tenant(system_sessions)
    await record_events(system_sessions, tenant_id, 3)
    await asyncio.sleep(0.01)
    cutoff = utcnow()
    await asyncio.sleep(0.01)
    await record_events(system_sessions, tenant_id, 2)
    async with system_sessions() as session:
        slug = (await get_tenant(session, tenant_id)).slug
    env = os.environ | {"STEWARD_DATABASE_URL": database_url, "STEWARD_DATA_DIR": str(tmp_path)}
    archive = tmp_path / "old.jsonl"
    argv = [*STEWARD, "audit", "archive", "--tenant", slug, "--before", cutoff.isoformat()]
    done = await asyncio.to_thread(run, [*argv, "--output", str(archive)], env=env)
    assert done.returncode == 0, done.stderr
    assert "archived 3 events up to #3" in done.stdout
    again = await asyncio.to_thread(run, [*argv, "--output", str(archive)], env=env)
    assert again.returncode == 2  # never overwrites an archive

    lines = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    for line in lines:
        line["tenant"] = tenant_id
        line["at_dt"] = datetime.fromisoformat(str(line["at"]).replace("Z", "+00:00"))
    assert _chained(lines)

    async with system_sessions() as session:
        left = await session.scalar(select(func.count()).where(AuditEvent.tenant_id == tenant_id))
        assert left == 3  # entries 4 and 5, and the record of the archiving itself
        report = await verify_chain(session, tenant_id)
    assert report.ok and report.checked == 3, report

    # What is left is still guarded: removing the first remaining entry is found.
    async with system_sessions() as session:
        first = await session.scalar(
            select(AuditEvent.id).where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq == 4)
        )
    await tamper(database_url, f"DELETE FROM audit_events WHERE id = {first}")
    async with system_sessions() as session:
        broken = await verify_chain(session, tenant_id)
    assert not broken.ok and broken.kind is Breach.MISSING and broken.first_bad_seq == 4
