"""The Steward agent: enrolls a machine, reports its state, runs the commands it is sent.

Async only. Typical use is the `steward-agent` command (`steward.agent.cli`); in Python:

    state = await enroll("https://steward.example", "123456", state_dir=path)
    agent = Agent(state, state_dir=path, transport="auto")
    task = asyncio.create_task(agent.run())
    ...
    agent.stop()
    await task

Exceptions (all carry `.code` and `.message`):

    AgentError
    ├── StateError → NotEnrolled
    ├── EnrollmentError
    ├── AuthenticationError
    └── TransportError → ServerUnreachable, ServerBusy, HandshakeFailed, UnexpectedResponse
"""

from __future__ import annotations

from steward.agent._agent import Agent, TransportMode
from steward.agent._channel import Channel
from steward.agent._collector import Collector
from steward.agent._enroll import enroll
from steward.agent._errors import (
    AgentError,
    AuthenticationError,
    EnrollmentError,
    HandshakeFailed,
    NotEnrolled,
    ServerBusy,
    ServerUnreachable,
    StateError,
    TransportError,
    UnexpectedResponse,
)
from steward.agent._http import Backoff, error_from_body, parse_retry_after, websocket_url
from steward.agent._identity import machine_id
from steward.agent._ledger import Ledger, LedgerEntry
from steward.agent._poll import PollTransport
from steward.agent._state import AgentState, default_state_dir, load_state, save_state
from steward.agent._transport import Transport
from steward.agent._websocket import WebSocketTransport
from steward.agent.commands import run_command

__all__ = [
    "Agent",
    "AgentError",
    "AgentState",
    "AuthenticationError",
    "Backoff",
    "Channel",
    "Collector",
    "EnrollmentError",
    "HandshakeFailed",
    "Ledger",
    "LedgerEntry",
    "NotEnrolled",
    "PollTransport",
    "ServerBusy",
    "ServerUnreachable",
    "StateError",
    "Transport",
    "TransportError",
    "TransportMode",
    "UnexpectedResponse",
    "WebSocketTransport",
    "default_state_dir",
    "enroll",
    "error_from_body",
    "load_state",
    "machine_id",
    "parse_retry_after",
    "run_command",
    "save_state",
    "websocket_url",
]
