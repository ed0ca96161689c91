"""What follows a committed batch of agent reports (commands/batch.py): live viewers are told,
jobs move on, and the audit log gets one chained append per tenant."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from steward.protocol import CommandStatus
from steward.server.audit.service import record_many
from steward.server.commands.batch import Stored

if TYPE_CHECKING:
    from steward.server.gateway.hub import AgentHub


async def after_reports(hub: AgentHub, stored: Stored) -> None:
    """After a batch of acks and results committed: live viewers, jobs, the audit log."""
    events: list[dict[str, Any]] = [
        {"kind": "status", "status": "running", "command_id": str(e.command_id)}
        for e in stored.started
    ]
    audit: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for finished in stored.finished:
        entry, result = finished.entry, finished.result
        events.append(
            {
                "kind": "done",
                "command_id": str(entry.command_id),
                "status": result.status,
                "exit_code": result.exit_code,
                "error": result.error,
            }
        )
        audit.setdefault(entry.tenant_id, []).append(
            {
                "actor": f"agent:{entry.device_id}",
                "actor_name": "agent",
                "action": "command.finished",
                "result": "success" if result.status == CommandStatus.SUCCEEDED else "failure",
                "target": f"command:{entry.command_id}",
                "device_id": entry.device_id,
                "detail": {"status": result.status, "exit_code": result.exit_code},
            }
        )
    await hub.output.statuses(events)
    for job_id in stored.job_ids:
        _in_background(hub.job_progress(job_id))
    for tenant_id, tenant_events in audit.items():
        _in_background(record_many(hub.system_sessions, tenant_id, tenant_events))


_background: set[asyncio.Task[object]] = set()


def _in_background(work: Coroutine[object, object, object]) -> None:
    task: asyncio.Task[object] = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
