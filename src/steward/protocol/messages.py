"""Versioned message types of the agent channel (WebSocket frames and poll bodies alike).

Every frame is one JSON object with a `type` field naming one of `MessageType`. Agents send
`AgentMessage`s, the server sends `ServerMessage`s. Anything else is refused with an `error`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from steward.protocol.streams import (
    FileRequest,
    FileResponse,
    TerminalClose,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOpened,
    TerminalOutput,
    TerminalResize,
)

PROTOCOL_VERSION = 1
# One frame or poll body may not exceed this; larger ones are refused unread.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Each captured stream (stdout, stderr) of a command is cut at this size and marked truncated.
MAX_OUTPUT_BYTES = 1024 * 1024
# Live output travels in `command.output` frames of at most this many characters.
MAX_OUTPUT_CHUNK = 64 * 1024

_Hostname = Annotated[str, Field(min_length=1, max_length=255)]
_ShortText = Annotated[str, Field(max_length=255)]
_Percent = Annotated[float, Field(ge=0, le=100)]
_Interval = Annotated[float, Field(gt=0, le=24 * 3600)]
_CommandId = Annotated[str, Field(min_length=1, max_length=64)]


class ProtocolError(ValueError):
    """A frame that is not valid JSON, not a known type, or not valid for its type."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MessageType(StrEnum):
    HELLO = "hello"
    WELCOME = "welcome"
    HEARTBEAT_LIGHT = "heartbeat.light"
    HEARTBEAT_FULL = "heartbeat.full"
    AGENT_CONFIG = "agent.config"
    COMMAND_DISPATCH = "command.dispatch"
    COMMAND_ACK = "command.ack"
    COMMAND_RESULT = "command.result"
    COMMAND_OUTPUT = "command.output"
    COMMAND_CANCEL = "command.cancel"
    ERROR = "error"


class CommandType(StrEnum):
    SHELL = "shell"
    SCRIPT = "script"
    PACKAGE_INSTALL = "package.install"
    PACKAGE_UNINSTALL = "package.uninstall"
    PACKAGE_UPGRADE = "package.upgrade"
    PACKAGE_LIST = "package.list"
    POWER_REBOOT = "power.reboot"
    POWER_SHUTDOWN = "power.shutdown"
    POWER_LOGOFF = "power.logoff"
    MESSAGE = "message"
    LOCALE_SET = "locale.set"
    SERVICE_START = "service.start"
    SERVICE_STOP = "service.stop"
    SERVICE_RESTART = "service.restart"
    SERVICE_STATUS = "service.status"
    PROCESS_LIST = "process.list"
    PROCESS_KILL = "process.kill"


class CommandStatus(StrEnum):
    # server side only: before the agent can be told
    PENDING_APPROVAL = "pending_approval"  # waits for approvers
    APPROVED = "approved"  # approved; queued in the same step (kept in the history)
    DENIED = "denied"  # an approver refused it
    EXPIRED = "expired"  # not approved or not delivered in time
    HELD = "held"  # part of a job, waiting for its turn (rate control) or its start time
    # delivery
    QUEUED = "queued"
    SENT = "sent"
    RUNNING = "running"
    # final
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        CommandStatus.SUCCEEDED,
        CommandStatus.FAILED,
        CommandStatus.TIMED_OUT,
        CommandStatus.CANCELLED,
        CommandStatus.DENIED,
        CommandStatus.EXPIRED,
    }
)


class _Message(BaseModel):
    # Unknown fields are ignored so that newer agents can talk to older servers and back.
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


# ---- agent -> server -------------------------------------------------------------------------


class Hello(_Message):
    """First frame on a WebSocket. The agent is already authenticated by its header."""

    type: Literal[MessageType.HELLO] = MessageType.HELLO
    protocol_version: int = PROTOCOL_VERSION
    agent_version: _ShortText
    hostname: _Hostname


class LightHeartbeat(_Message):
    """Live status, sent every `light_heartbeat_interval_s`."""

    type: Literal[MessageType.HEARTBEAT_LIGHT] = MessageType.HEARTBEAT_LIGHT
    cpu_percent: _Percent
    memory_percent: _Percent
    ip_addresses: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=64
    )
    uptime_s: int = Field(ge=0)
    logged_in_users: list[_ShortText] = Field(default_factory=list, max_length=64)


class DiskInfo(_Message):
    mountpoint: Annotated[str, Field(max_length=1024)]
    fstype: _ShortText = ""
    total_bytes: int = Field(ge=0)
    used_bytes: int = Field(ge=0)


class ProcessInfo(_Message):
    pid: int = Field(ge=0)
    name: _ShortText
    cpu_percent: float = Field(ge=0)
    memory_bytes: int = Field(ge=0)


class FullHeartbeat(_Message):
    """Static specs and inventory, sent after `welcome` and every `full_heartbeat_interval_s`."""

    type: Literal[MessageType.HEARTBEAT_FULL] = MessageType.HEARTBEAT_FULL
    hostname: _Hostname
    os_name: _ShortText
    os_version: _ShortText
    architecture: _ShortText = ""
    cpu_model: _ShortText = ""
    cpu_cores: int = Field(default=0, ge=0)
    memory_total_bytes: int = Field(default=0, ge=0)
    serial_number: _ShortText = ""
    boot_time: datetime | None = None
    disks: list[DiskInfo] = Field(default_factory=list, max_length=256)
    top_processes: list[ProcessInfo] = Field(default_factory=list, max_length=50)


class CommandAck(_Message):
    """The agent has taken the command and started it."""

    type: Literal[MessageType.COMMAND_ACK] = MessageType.COMMAND_ACK
    command_id: _CommandId


class CommandResult(_Message):
    """Final outcome of a command. May be sent again for the same id (the server dedupes)."""

    type: Literal[MessageType.COMMAND_RESULT] = MessageType.COMMAND_RESULT
    command_id: _CommandId
    status: Literal[
        CommandStatus.SUCCEEDED,
        CommandStatus.FAILED,
        CommandStatus.TIMED_OUT,
        CommandStatus.CANCELLED,
    ]
    exit_code: int | None = None
    stdout: str = Field(default="", max_length=MAX_OUTPUT_BYTES)
    stderr: str = Field(default="", max_length=MAX_OUTPUT_BYTES)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error: _ShortText = ""


class CommandOutput(_Message):
    """Live output of a running command: `data` continues `stream` at character `offset`.
    Best effort (the final `command.result` carries the whole captured output); a repeated or
    overlapping chunk is recognised by its offset."""

    type: Literal[MessageType.COMMAND_OUTPUT] = MessageType.COMMAND_OUTPUT
    command_id: _CommandId
    stream: Literal["stdout", "stderr"]
    offset: int = Field(ge=0, le=MAX_OUTPUT_BYTES)
    data: str = Field(min_length=1, max_length=MAX_OUTPUT_CHUNK)


AgentMessage = Annotated[
    Hello
    | LightHeartbeat
    | FullHeartbeat
    | CommandAck
    | CommandResult
    | CommandOutput
    | TerminalOpened
    | TerminalOutput
    | TerminalExit
    | FileResponse,
    Field(discriminator="type"),
]

# ---- server -> agent -------------------------------------------------------------------------


class AgentConfig(_Message):
    """Intervals the agent must use from now on (also embedded in `welcome`)."""

    type: Literal[MessageType.AGENT_CONFIG] = MessageType.AGENT_CONFIG
    light_heartbeat_interval_s: _Interval
    full_heartbeat_interval_s: _Interval


class Welcome(_Message):
    type: Literal[MessageType.WELCOME] = MessageType.WELCOME
    protocol_version: int = PROTOCOL_VERSION
    device_id: str
    server_time: datetime
    light_heartbeat_interval_s: _Interval
    full_heartbeat_interval_s: _Interval


class CommandDispatch(_Message):
    type: Literal[MessageType.COMMAND_DISPATCH] = MessageType.COMMAND_DISPATCH
    command_id: _CommandId
    command_type: CommandType
    payload: dict[str, Any]
    timeout_s: float = Field(gt=0, le=7 * 24 * 3600)


class CommandCancel(_Message):
    """Stop a command: kill it with its process tree if it runs (the result says `cancelled`);
    never start it if it has not started yet (the agent records it as cancelled)."""

    type: Literal[MessageType.COMMAND_CANCEL] = MessageType.COMMAND_CANCEL
    command_id: _CommandId


class ErrorMessage(_Message):
    """The server refused a frame. The connection stays open unless the code says otherwise."""

    type: Literal[MessageType.ERROR] = MessageType.ERROR
    code: str
    message: str


ServerMessage = Annotated[
    Welcome
    | AgentConfig
    | CommandDispatch
    | CommandCancel
    | ErrorMessage
    | TerminalOpen
    | TerminalInput
    | TerminalResize
    | TerminalClose
    | FileRequest,
    Field(discriminator="type"),
]

# ---- HTTP bodies -----------------------------------------------------------------------------


class EnrollRequest(BaseModel):
    """`POST /api/agent/v1/enroll`: trade a PIN for an agent id and secret."""

    model_config = ConfigDict(extra="ignore")

    pin: str = Field(min_length=1, max_length=32)
    machine_id: str = Field(min_length=1, max_length=128)
    hostname: _Hostname
    agent_version: _ShortText = ""
    os_name: _ShortText = ""


class EnrollResponse(BaseModel):
    agent_id: str
    agent_secret: str
    device_id: str
    tenant: str


class PollRequest(BaseModel):
    """`POST /api/agent/v1/poll`: the agent's messages since the last poll (a light heartbeat
    first, usually), answered with the server's messages for it (queued commands, config)."""

    model_config = ConfigDict(extra="ignore")

    agent_version: _ShortText = ""
    messages: list[AgentMessage] = Field(default_factory=list, max_length=256)


class PollResponse(BaseModel):
    """Peers parse `messages` one by one and skip types they do not know (a newer server)."""

    model_config = ConfigDict(allow_inf_nan=False)

    messages: list[ServerMessage] = Field(default_factory=list)
    light_heartbeat_interval_s: _Interval
    full_heartbeat_interval_s: _Interval


_agent_adapter: TypeAdapter[Any] = TypeAdapter(AgentMessage)
_server_adapter: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def _parse(raw: str | bytes, adapter: TypeAdapter[Any]) -> Any:
    size = len(raw)
    if isinstance(raw, str) and size * 4 > MAX_MESSAGE_BYTES:  # only long text can be too big
        size = len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError("message_too_large", f"frames are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if not errors:
            raise ProtocolError("invalid_message", "invalid frame") from None
        first = errors[0]
        kind = first.get("type", "")
        if kind == "json_invalid":
            raise ProtocolError("malformed_json", "frame is not valid JSON") from None
        if kind in {"union_tag_not_found", "dict_type", "model_attributes_type", "model_type"}:
            raise ProtocolError(
                "malformed_message", "frame must be an object with a 'type'"
            ) from None
        if kind == "union_tag_invalid":
            raise ProtocolError("unknown_type", "unknown message type") from None
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ProtocolError(
            "invalid_message", f"invalid field '{where}': {first.get('msg', 'invalid')}"
        ) from None


def parse_agent_message(raw: str | bytes) -> Any:
    """Parse one frame sent by an agent. Raises `ProtocolError` with a stable code."""
    return _parse(raw, _agent_adapter)


def parse_server_message(raw: str | bytes) -> Any:
    """Parse one frame sent by the server. Raises `ProtocolError` with a stable code."""
    return _parse(raw, _server_adapter)


def dump_message(message: BaseModel) -> str:
    return message.model_dump_json()
