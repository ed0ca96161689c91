"""What the WebSocket and poll transports share: URLs, the auth header, reading error bodies
(`{"error": {"code", "message"}}`) and mapping HTTP statuses onto the exception tree."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

from steward.agent._errors import (
    AuthenticationError,
    ServerBusy,
    TransportError,
    UnexpectedResponse,
)

AGENT_API_PREFIX = "/api/agent/v1"
# A Retry-After longer than this is taken as this: an agent should not go silent for a day.
MAX_RETRY_AFTER_S = 3600.0


def api_url(server_url: str, endpoint: str) -> str:
    """`{server}/api/agent/v1/{endpoint}`; keeps a path prefix the server may live under."""
    return f"{server_url.rstrip('/')}{AGENT_API_PREFIX}/{endpoint}"


def websocket_url(server_url: str) -> str:
    """The WebSocket endpoint for an http(s) server URL: http → ws, https → wss, same host,
    port and path prefix (`https://fleet.example/steward` → `wss://fleet.example/steward/...`)."""
    parts = urlsplit(server_url)
    schemes = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"not an http(s) server URL: {server_url!r}")
    path = f"{parts.path.rstrip('/')}{AGENT_API_PREFIX}/ws"
    return urlunsplit((schemes[parts.scheme], parts.netloc, path, "", ""))


def authorization_header(agent_id: str, agent_secret: str) -> str:
    return f"Agent {agent_id}:{agent_secret}"


def error_from_body(body: bytes | str, status: int) -> tuple[str, str]:
    """The (code, message) of an error response. Falls back to `http_<status>` and the start
    of the body when the server (or a proxy in front of it) did not send the JSON shape."""
    fallback_code = f"http_{status}"
    try:
        error = json.loads(body)["error"]
        code, message = error["code"], error.get("message", "")
        if isinstance(code, str) and code:
            return code, str(message) if message is not None else ""
    except (ValueError, KeyError, TypeError):
        pass
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return fallback_code, text.strip()[:200] or f"HTTP {status}"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def error_for_status(
    status: int, body: bytes, headers: Mapping[str, str]
) -> TransportError | AuthenticationError:
    """The exception for a non-success answer to an authenticated agent request."""
    code, message = error_from_body(body, status)
    if status in (401, 403):
        return AuthenticationError(code, message)
    if status in (429, 503):  # rate limited / at capacity: come back later, as told
        retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
        return ServerBusy(message, retry_after=retry_after)
    return UnexpectedResponse(message, status=status, code=code)


class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform in
    [0, min(cap, initial * 2**n)], so a fleet that lost its server does not come back at once."""

    def __init__(self, initial_s: float = 1.0, cap_s: float = 60.0) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.initial_s * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempt = 0
