"""HTTP short-poll transport, for networks where WebSockets do not get through.

Each poll posts a fresh light heartbeat plus whatever is pending (acks, results, a due full
heartbeat) and gets back the server's messages and intervals. The agent polls every light
interval, and at once whenever it has something to say (a command was acked or finished).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from pydantic import ValidationError

from steward import __version__
from steward.agent._channel import Channel, OutgoingMessage
from steward.agent._errors import ServerUnreachable, UnexpectedResponse
from steward.agent._http import api_url, authorization_header, error_for_status
from steward.agent._state import AgentState
from steward.agent._transport import Transport
from steward.protocol import (
    MAX_MESSAGE_BYTES,
    PollRequest,
    PollResponse,
    ProtocolError,
    dump_message,
    parse_server_message,
)

logger = logging.getLogger("steward.agent")

_MAX_MESSAGES = 256  # PollRequest.messages
_ENVELOPE_BYTES = 4096  # room for the JSON around the messages
# A full heartbeat is at most ~300 KiB (256 disks with 1 KiB mount points, 10 processes).
_FULL_HEARTBEAT_ROOM = 400 * 1024


class PollTransport(Transport):
    name = "poll"

    def __init__(self, state: AgentState, http: httpx.AsyncClient) -> None:
        self.state = state
        self.http = http
        self.url = api_url(state.server_url, "poll")
        self._headers = {
            "Authorization": authorization_header(state.agent_id, state.agent_secret),
            "Content-Type": "application/json",
        }

    async def run(self, channel: Channel, *, until: float | None = None) -> None:
        while not channel.stopping.is_set():
            await self.poll_once(channel)
            if until is not None and time.monotonic() >= until:
                return
            await channel.wait_for_work()

    async def poll_once(self, channel: Channel) -> None:
        light = await channel.light_heartbeat()
        budget = MAX_MESSAGE_BYTES - _ENVELOPE_BYTES - _size(light)
        batch: list[OutgoingMessage] = []
        for message in channel.pending():
            size = _size(message)
            if size > budget or len(batch) + 2 >= _MAX_MESSAGES:
                break  # the rest goes in the next poll, right after this one
            batch.append(message)
            budget -= size
        # Pending results first; without room the full heartbeat stays due for the next poll.
        room_for_full = budget >= _FULL_HEARTBEAT_ROOM
        full = await channel.full_heartbeat() if channel.full_due() and room_for_full else None
        body = PollRequest(
            agent_version=__version__,
            messages=[light, *batch, *([full] if full is not None else [])],
        )
        try:
            response = await self.http.post(
                self.url, content=dump_message(body), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot poll {self.url}: {exc or type(exc).__name__}") from exc
        if response.status_code != 200:
            raise error_for_status(response.status_code, response.content, response.headers)
        messages, light_s, full_s = _parse_response(response.content)
        if channel.connected_at is None:
            channel.on_connected()
            logger.info("polling %s", self.url)
        channel.apply_intervals(light_s, full_s)
        await channel.delivered(batch)
        for server_message in messages:
            channel.handle(server_message)


def _size(message: Any) -> int:
    return len(dump_message(message).encode("utf-8")) + 1


def _parse_response(content: bytes) -> tuple[list[object], float, float]:
    """The messages and intervals of a poll response. Messages are parsed one by one so that
    one the agent does not know (from a newer server) does not cost it the others."""
    try:
        data = json.loads(content)
        raw_messages = data.get("messages", []) if isinstance(data, dict) else None
        if not isinstance(raw_messages, list):
            raise ValueError("messages must be a list")
        envelope = PollResponse.model_validate({**data, "messages": []})
    except (ValueError, ValidationError) as exc:
        raise UnexpectedResponse(f"invalid poll response: {exc}", status=200) from exc
    messages: list[object] = []
    for raw in raw_messages:
        try:
            messages.append(parse_server_message(json.dumps(raw)))
        except ProtocolError as exc:
            logger.warning("ignoring a message in a poll response (%s): %s", exc.code, exc.message)
    return messages, envelope.light_heartbeat_interval_s, envelope.full_heartbeat_interval_s
