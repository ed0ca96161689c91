"""Builders shared by the command-type tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import httpx
import psutil

from steward.protocol import CommandDispatch, CommandType, PollResponse, dump_message


def dispatch(
    command_type: CommandType | str,
    payload: dict[str, Any],
    *,
    timeout_s: float = 30,
    command_id: str | None = None,
) -> CommandDispatch:
    return CommandDispatch(
        command_id=command_id or uuid.uuid4().hex,
        command_type=CommandType(command_type),
        payload=payload,
        timeout_s=timeout_s,
    )


def script_payload(body: str, interpreter: str = "sh", **fields: Any) -> dict[str, Any]:
    return {
        "script_id": "s-1",
        "name": "test script",
        "version": 1,
        "interpreter": interpreter,
        "body": body,
        "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
        **fields,
    }


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def soon_gone(pid: int, timeout_s: float = 5) -> bool:
    for _ in range(int(timeout_s / 0.05)):
        if gone(pid):
            return True
        await asyncio.sleep(0.05)
    return False


class PollServer:
    """Answers `POST /api/agent/v1/poll` like the server: records each request's messages and
    hands out the queued server messages."""

    def __init__(self, light_interval_s: float = 30) -> None:
        self.polls: list[list[dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.queued: list[Any] = []
        self.status = 200
        self.light_interval_s = light_interval_s
        self.changed = asyncio.Event()

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/agent/v1/poll"
        self.authorizations.append(request.headers.get("authorization"))
        self.polls.append(json.loads(request.content)["messages"])
        self.changed.set()
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"code": "nope", "message": "no"}})
        response = PollResponse(
            messages=self.queued,
            light_heartbeat_interval_s=self.light_interval_s,
            full_heartbeat_interval_s=3600,
        )
        self.queued = []
        return httpx.Response(200, content=dump_message(response))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def sent(self, message_type: str) -> list[dict[str, Any]]:
        return [m for poll in self.polls for m in poll if m["type"] == message_type]

    async def wait_for(self, message_type: str, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.sent(message_type):
                self.changed.clear()
                await self.changed.wait()
        return self.sent(message_type)[0]
