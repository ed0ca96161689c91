"""The agent-facing side of commands: what a device should get, and what it reports.

Called by the gateway with a system session, always keyed by the device the agent
authenticated as: an agent can only touch its own commands.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandDispatch, CommandResult, CommandStatus, CommandType
from steward.server.commands.models import Command
from steward.server.db.base import utcnow
from steward.server.jobs import lifecycle

S = CommandStatus
_IN_FLIGHT = (S.QUEUED, S.SENT, S.RUNNING)


class Queued(Protocol):
    """What a dispatch is made of: a Command, or a row of one."""

    id: uuid.UUID
    device_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    timeout_s: float


@dataclass(slots=True)
class JobCommand:
    """A job's command, released: the job's type, payload and timeout, its own id and device."""

    id: uuid.UUID
    device_id: uuid.UUID
    type: str
    payload: dict[str, Any]
    timeout_s: float


def dispatch_fields(command: Queued) -> dict[str, Any]:
    """The `command.dispatch` message as JSON-ready fields (what `to_dispatch` validates)."""
    return {
        "type": "command.dispatch",
        "command_id": str(command.id),
        "command_type": command.type,
        "payload": command.payload,
        "timeout_s": command.timeout_s,
    }


def to_dispatch(command: Command) -> CommandDispatch:
    return CommandDispatch(
        command_id=str(command.id),
        command_type=CommandType(command.type),
        payload=command.payload,
        timeout_s=command.timeout_s,
    )


async def pending_for(
    session: AsyncSession, device_id: uuid.UUID, *, resend_after_s: float | None = None
) -> Sequence[Command]:
    """Commands the agent should have. With `resend_after_s`, sent/running ones are included
    only when they were sent that long ago (a poll answer may have been lost); without it, all
    unfinished ones are (a new connection: the agent's ledger drops what it already ran)."""
    condition = Command.status == S.QUEUED
    if resend_after_s is None:
        condition = Command.status.in_(list(_IN_FLIGHT))
    else:
        stale = utcnow() - timedelta(seconds=resend_after_s)
        condition = or_(
            condition,
            Command.status.in_([S.SENT, S.RUNNING]) & (Command.sent_at < stale),
        )
    rows = await session.scalars(
        select(Command)
        .where(Command.device_id == device_id, condition)
        .order_by(Command.created_at)
    )
    return rows.all()


# A command cancelled while queued may have been on its way to the agent: tell it for a while.
RECENT_CANCEL_S = 120.0


async def cancels_for(session: AsyncSession, device_id: uuid.UUID) -> list[str]:
    """Ids of this device's commands someone cancelled that its agent may have."""
    recent = utcnow() - timedelta(seconds=RECENT_CANCEL_S)
    rows = await session.scalars(
        select(Command.id).where(
            Command.device_id == device_id,
            Command.cancel_requested_at.is_not(None),
            Command.status.in_([S.SENT, S.RUNNING])
            | ((Command.status == S.CANCELLED) & (Command.cancel_requested_at > recent)),
        )
    )
    return [str(command_id) for command_id in rows]


SENT_AGAIN = "sent again (the agent's ledger keeps it from running twice)"


async def mark_sent(
    session: AsyncSession, tenant_id: uuid.UUID, device_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> None:
    """Record that these commands are (being) sent. A command already running stays running
    (a re-send after a reconnect) and gets no `sent` entry in its history."""
    if not ids:
        return
    outcome = await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id.in_(list(ids)),
            Command.status.in_([S.QUEUED, S.SENT]),
        )
        .values(status=S.SENT, sent_at=utcnow())
        .returning(Command.id)
    )
    again = await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id.in_(list(ids)),
            Command.status == S.RUNNING,
        )
        .values(sent_at=utcnow())
        .returning(Command.id)
    )
    sent = [row.id for row in outcome.all()]
    await lifecycle.record(session, tenant_id, sent, S.SENT, actor=lifecycle.SYSTEM)
    await lifecycle.record(
        session,
        tenant_id,
        [row.id for row in again.all()],
        S.RUNNING,
        actor=lifecycle.SYSTEM,
        note=SENT_AGAIN,
    )


async def unfinished_for_many(
    session: AsyncSession, device_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[list[str], list[Command]]]:
    """For agents that just connected: per device, the cancels it should hear and every
    unfinished command (two queries for all of them; `cancels_for` and `pending_for`)."""
    found: dict[uuid.UUID, tuple[list[str], list[Command]]] = {d: ([], []) for d in device_ids}
    recent = utcnow() - timedelta(seconds=RECENT_CANCEL_S)
    cancels = await session.execute(
        select(Command.device_id, Command.id).where(
            Command.device_id.in_(list(device_ids)),
            Command.cancel_requested_at.is_not(None),
            Command.status.in_([S.SENT, S.RUNNING])
            | ((Command.status == S.CANCELLED) & (Command.cancel_requested_at > recent)),
        )
    )
    for device_id, command_id in cancels:
        found[device_id][0].append(str(command_id))
    pending = await session.scalars(
        select(Command)
        .where(Command.device_id.in_(list(device_ids)), Command.status.in_(list(_IN_FLIGHT)))
        .order_by(Command.created_at, Command.id)
    )
    for command in pending:
        found[command.device_id][1].append(command)
    return found


async def mark_sent_many(session: AsyncSession, sending: Sequence[Command]) -> None:
    """`mark_sent` for commands of many devices and tenants (ids this server just read)."""
    ids = [c.id for c in sending]
    if not ids:
        return
    outcome = await session.execute(
        update(Command)
        .where(Command.id.in_(ids), Command.status.in_([S.QUEUED, S.SENT]))
        .values(status=S.SENT, sent_at=utcnow())
        .returning(Command.id, Command.tenant_id)
        .execution_options(synchronize_session=False)
    )
    again = await session.execute(
        update(Command)
        .where(Command.id.in_(ids), Command.status == S.RUNNING)
        .values(sent_at=utcnow())
        .returning(Command.id, Command.tenant_id)
        .execution_options(synchronize_session=False)
    )
    await lifecycle.record_many(
        session, [(row.tenant_id, row.id, S.SENT) for row in outcome], actor=lifecycle.SYSTEM
    )
    await lifecycle.record_many(
        session,
        [(row.tenant_id, row.id, S.RUNNING) for row in again],
        actor=lifecycle.SYSTEM,
        note=SENT_AGAIN,
    )


async def mark_running(
    session: AsyncSession, tenant_id: uuid.UUID, device_id: uuid.UUID, command_id: str
) -> None:
    parsed = _parse_id(command_id)
    if parsed is None:
        return
    outcome = await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id == parsed,
            Command.status.in_([S.QUEUED, S.SENT]),
        )
        .values(status=S.RUNNING, started_at=utcnow())
    )
    if outcome.rowcount:  # type: ignore[attr-defined]
        await lifecycle.record(session, tenant_id, [parsed], S.RUNNING, actor=lifecycle.AGENT)


@dataclass(frozen=True)
class Recorded:
    command_id: uuid.UUID
    job_id: uuid.UUID | None


async def record_result(
    session: AsyncSession, tenant_id: uuid.UUID, device_id: uuid.UUID, result: CommandResult
) -> Recorded | None:
    """Store a final result once; a repeated result for the same command changes nothing
    (None). A result for a command cancelled before it ran is not stored either."""
    parsed = _parse_id(result.command_id)
    if parsed is None:
        return None
    outcome = await session.execute(
        update(Command)
        .where(
            Command.device_id == device_id,
            Command.id == parsed,
            Command.status.in_(list(_IN_FLIGHT)),
        )
        .values(
            status=result.status,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            stdout_truncated=result.stdout_truncated,
            stderr_truncated=result.stderr_truncated,
            error=result.error,
            finished_at=utcnow(),
        )
        .returning(Command.job_id)
    )
    row = outcome.first()
    if row is None:
        return None
    await lifecycle.record(
        session, tenant_id, [parsed], result.status, actor=lifecycle.AGENT, note=result.error
    )
    return Recorded(parsed, row.job_id)


def _parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
