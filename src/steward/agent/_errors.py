"""The agent's exception tree. Everything the package raises on purpose is an `AgentError`.

    AgentError
    ├── StateError              the state directory or a file in it is unusable
    │   └── NotEnrolled         no state file: run `steward-agent enroll` first
    ├── EnrollmentError         the server refused to enroll (bad PIN, rate limited, ...)
    ├── AuthenticationError     the server refused the agent's id/secret
    └── TransportError          talking to the server failed
        ├── ServerUnreachable   no connection (DNS, refused, timeout, dropped handshake)
        ├── ServerBusy          429/503: try again later (honours Retry-After)
        ├── HandshakeFailed     reached, but no WebSocket came of it (a proxy in the way?)
        └── UnexpectedResponse  the server answered, but not as the protocol says

Every error carries a stable `code` (for logs and the CLI) and a human `message`.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""

    default_code = "agent_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class StateError(AgentError):
    """The state directory or a file in it cannot be read or written."""

    default_code = "state_error"


class NotEnrolled(StateError):
    """There is no state file: the agent has not been enrolled yet."""

    default_code = "not_enrolled"


class EnrollmentError(AgentError):
    """The server refused to enroll the agent (`pin_invalid`, `pin_used`, `pin_expired`,
    `rate_limited`, ...). `code` is the server's error code."""

    default_code = "enrollment_failed"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class AuthenticationError(AgentError):
    """The server refused the agent's credentials (`agent_unauthorized`). The agent keeps
    retrying slowly: an operator may fix it on the server."""

    default_code = "agent_unauthorized"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class TransportError(AgentError):
    """Talking to the server failed. The agent reconnects with backoff."""

    default_code = "transport_error"


class ServerUnreachable(TransportError):
    """No connection could be made or kept (DNS, refused, timeout, closed handshake)."""

    default_code = "server_unreachable"


class ServerBusy(TransportError):
    """The server answered 503 (unavailable) or 429 (rate limited, at capacity) to an agent
    connection. `retry_after` (seconds) is its Retry-After, if it sent one."""

    default_code = "server_busy"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HandshakeFailed(TransportError):
    """Something answered at the server's address, but no WebSocket session came of it: an
    HTTP status other than 101, a stalled or broken handshake, a close before `welcome`. In
    auto mode, repeated handshake failures switch the agent to polling for a while."""

    default_code = "handshake_failed"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class UnexpectedResponse(TransportError):
    """The server answered with a status or body the protocol does not allow."""

    default_code = "unexpected_response"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status
