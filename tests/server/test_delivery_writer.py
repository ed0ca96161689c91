"""The batched writer of sends, acks and results (`commands/batch.py`) and the transitions it
stores (`jobs/lifecycle.insert_changes`), on SQLite (one statement over a JSON array per kind)
and PostgreSQL (executemany): every value reads back as sent, whatever characters it holds,
and an agent cannot touch another device's command."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import CommandResult, CommandStatus, EnrollRequest
from steward.server.commands.batch import DeliveryWriter
from steward.server.commands.models import Command
from steward.server.devices import enrollment
from steward.server.jobs.models import CommandTransition
from steward.server.tenancy.service import create_tenant

Sessions = async_sessionmaker[AsyncSession]
KEY = "k" * 32
TRICKY = 'quote " apostrophe \' backslash \\ newline\n tab\t 한국어 약국 \u2603 {"json": [1]}'


async def _device(
    sessions: Sessions, tenant_id: uuid.UUID | None = None
) -> tuple[uuid.UUID, uuid.UUID]:
    async with sessions() as session:
        if tenant_id is None:
            tenant = await create_tenant(session, f"t{uuid.uuid4().hex[:8]}", "T")
        else:
            from steward.server.tenancy.models import Tenant

            tenant = await session.get_one(Tenant, tenant_id)
        pin, _row, _group = await enrollment.create_pin(
            session, KEY, tenant, group_name=None, ttl_s=600, created_by="test"
        )
        enrolled = await enrollment.enroll(
            session, KEY, EnrollRequest(pin=pin, machine_id=uuid.uuid4().hex, hostname="h")
        )
        await session.commit()
        return tenant.id, uuid.UUID(enrolled.device_id)


async def _queued(sessions: Sessions, tenant_id: uuid.UUID, device_id: uuid.UUID) -> uuid.UUID:
    async with sessions() as session:
        command = Command(
            tenant_id=tenant_id, device_id=device_id, type="shell",
            payload={"command": "true"}, status=CommandStatus.QUEUED, timeout_s=60,
        )  # fmt: skip
        session.add(command)
        await session.commit()
        return command.id


async def test_send_ack_and_result_in_one_batch_read_back_exactly(
    system_sessions: Sessions,
) -> None:
    tenant_id, device_id = await _device(system_sessions)
    command_id = await _queued(system_sessions, tenant_id, device_id)
    writer = DeliveryWriter(system_sessions)
    writer.sent(tenant_id, device_id, command_id)
    writer.ack(tenant_id, device_id, str(command_id))
    result = CommandResult(
        command_id=str(command_id), status=CommandStatus.FAILED, exit_code=None,
        stdout=TRICKY, stderr=TRICKY[::-1], stdout_truncated=True, error="exit " + TRICKY[:40],
    )  # fmt: skip
    writer.result(tenant_id, device_id, result)
    stored = await writer.flush()
    assert [e.command_id for e in stored.started] == [command_id]
    assert [f.entry.command_id for f in stored.finished] == [command_id]
    async with system_sessions() as session:
        command = await session.get_one(Command, command_id)
        assert command.status == CommandStatus.FAILED
        assert (command.stdout, command.stderr) == (TRICKY, TRICKY[::-1])
        assert (command.stdout_truncated, command.stderr_truncated) == (True, False)
        assert command.exit_code is None and command.error == "exit " + TRICKY[:40]
        assert command.sent_at and command.started_at and command.finished_at
        assert command.finished_at >= command.started_at
        steps = (
            await session.execute(
                select(CommandTransition.status, CommandTransition.actor, CommandTransition.note)
                .where(CommandTransition.command_id == command_id)
                .order_by(CommandTransition.id)
            )
        ).all()
    assert [tuple(step) for step in steps] == [
        ("sent", "system", ""),
        ("running", "agent", ""),
        ("failed", "agent", "exit " + TRICKY[:40]),
    ]


async def test_a_result_for_another_device_or_a_repeat_changes_nothing(
    system_sessions: Sessions,
) -> None:
    tenant_id, device_id = await _device(system_sessions)
    _same_tenant, other_device = await _device(system_sessions, tenant_id)
    command_id = await _queued(system_sessions, tenant_id, device_id)
    writer = DeliveryWriter(system_sessions)
    forged = CommandResult(command_id=str(command_id), status=CommandStatus.SUCCEEDED, exit_code=0)
    writer.result(tenant_id, other_device, forged)  # the other agent claims it
    writer.ack(tenant_id, other_device, str(command_id))
    stored = await writer.flush()
    assert not stored.started and not stored.finished
    writer.result(tenant_id, device_id, forged)
    assert len((await writer.flush()).finished) == 1
    repeat = CommandResult(command_id=str(command_id), status=CommandStatus.FAILED, stdout="x")
    writer.result(tenant_id, device_id, repeat)
    assert not (await writer.flush()).finished
    async with system_sessions() as session:
        command = await session.get_one(Command, command_id)
        assert (command.status, command.stdout, command.exit_code) == ("succeeded", "", 0)
        count = len(
            (
                await session.scalars(
                    select(CommandTransition.id).where(CommandTransition.command_id == command_id)
                )
            ).all()
        )
    assert count == 1  # succeeded; nothing for the forged ack or the repeat


async def test_thousands_of_results_in_one_batch(system_sessions: Sessions) -> None:
    """More than one statement's worth on each path (2,000 rows per SQLite statement)."""
    tenant_id, device_id = await _device(system_sessions)
    async with system_sessions() as session:
        commands = [
            Command(
                tenant_id=tenant_id,
                device_id=device_id,
                type="shell",
                payload={},
                status=CommandStatus.SENT,
                timeout_s=60,
            )
            for _ in range(2500)
        ]
        session.add_all(commands)
        await session.commit()
        ids = [c.id for c in commands]
    writer = DeliveryWriter(system_sessions)
    for number, command_id in enumerate(ids):
        writer.result(
            tenant_id, device_id,
            CommandResult(command_id=str(command_id), status=CommandStatus.SUCCEEDED,
                          exit_code=0, stdout=f"out {number}"),
        )  # fmt: skip
    assert len((await writer.flush()).finished) == 2500
    async with system_sessions() as session:
        rows = (await session.execute(select(Command.id, Command.stdout, Command.status))).all()
    found = {row.id: (row.stdout, row.status) for row in rows}
    assert all(found[c] == (f"out {n}", "succeeded") for n, c in enumerate(ids))
