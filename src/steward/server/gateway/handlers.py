"""What the server does with each agent message. Shared by the WebSocket and the poll endpoint."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import (
    CommandAck,
    CommandOutput,
    CommandResult,
    CommandStatus,
    FullHeartbeat,
    Hello,
    LightHeartbeat,
)
from steward.server.audit.service import record
from steward.server.commands import delivery as commands
from steward.server.devices.enrollment import AgentIdentity
from steward.server.devices.models import Device
from steward.server.gateway.hub import AgentHub

log = logging.getLogger(__name__)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


AgentMessageT = Hello | LightHeartbeat | FullHeartbeat | CommandAck | CommandResult | CommandOutput


async def handle_message(
    hub: AgentHub,
    session: AsyncSession,
    identity: AgentIdentity,
    message: AgentMessageT,
    *,
    transport: str,
    interval_s: float,
) -> None:
    """Apply one message. Database writes are left for the caller to commit."""
    device_id = identity.device_id
    if isinstance(message, LightHeartbeat):
        hub.status.seen(
            device_id,
            identity.tenant_id,
            transport=transport,
            interval_s=interval_s,
            heartbeat=message,
        )
    elif isinstance(message, FullHeartbeat):  # written with the next status flush
        hub.status.seen(device_id, identity.tenant_id, transport=transport, interval_s=interval_s)
        hub.status.inventory(
            device_id,
            {
                "hostname": message.hostname,
                "os_name": message.os_name,
                "os_version": message.os_version,
                "architecture": message.architecture,
                "cpu_model": message.cpu_model,
                "cpu_cores": message.cpu_cores,
                "memory_total_bytes": message.memory_total_bytes,
                "serial_number": message.serial_number,
                "boot_time": _aware(message.boot_time),
                "disks": [d.model_dump() for d in message.disks],
                "top_processes": [p.model_dump() for p in message.top_processes],
            },
        )
    elif isinstance(message, Hello):
        await session.execute(
            update(Device)
            .where(Device.id == device_id)
            .values(agent_version=message.agent_version, hostname=message.hostname)
        )
    elif isinstance(message, CommandOutput):
        # Memory only (written behind); the session is only read, once per command.
        await hub.output.feed(identity.tenant_id, device_id, message, session)
    elif isinstance(message, CommandAck):
        await commands.mark_running(session, identity.tenant_id, device_id, message.command_id)
        _after_commit(session, functools.partial(hub.output.started, message.command_id))
    elif isinstance(message, CommandResult):
        recorded = await commands.record_result(session, identity.tenant_id, device_id, message)
        if recorded is None:
            log.debug("ignored repeated or unknown result %s", message.command_id)
            return
        if recorded.job_id is not None:  # its job may release the next devices
            _after_commit(session, functools.partial(hub.job_progress, recorded.job_id))
        _after_commit(
            session,
            functools.partial(
                hub.output.finished,
                message.command_id,
                status=message.status,
                exit_code=message.exit_code,
                error=message.error,
            ),
        )
        # Recorded once the caller has committed the result (its own transaction, later).
        _in_background(
            record(
                hub.system_sessions,
                tenant_id=identity.tenant_id,
                actor=f"agent:{device_id}",
                actor_name="agent",
                action="command.finished",
                result="success" if message.status == CommandStatus.SUCCEEDED else "failure",
                target=f"command:{message.command_id}",
                device_id=device_id,
                detail={"status": message.status, "exit_code": message.exit_code},
            )
        )


_background: set[asyncio.Task[object]] = set()


def _after_commit(
    session: AsyncSession, work: Callable[[], Coroutine[object, object, object]]
) -> None:
    """Start `work` once the caller commits: live viewers then reload the stored state."""

    def run(_session: object) -> None:
        _in_background(work())

    event.listen(session.sync_session, "after_commit", run, once=True)


def _in_background(work: Coroutine[object, object, object]) -> None:
    task: asyncio.Task[object] = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
