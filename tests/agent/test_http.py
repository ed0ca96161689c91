from __future__ import annotations

from datetime import UTC, datetime

import pytest

from steward.agent import (
    AuthenticationError,
    Backoff,
    ServerBusy,
    UnexpectedResponse,
    error_from_body,
    parse_retry_after,
    websocket_url,
)
from steward.agent._http import api_url, authorization_header, error_for_status


@pytest.mark.parametrize(
    ("server_url", "ws"),
    [
        ("http://localhost:8000", "ws://localhost:8000/api/agent/v1/ws"),
        ("https://fleet.example", "wss://fleet.example/api/agent/v1/ws"),
        ("https://fleet.example/", "wss://fleet.example/api/agent/v1/ws"),
        ("https://fleet.example:8443/steward", "wss://fleet.example:8443/steward/api/agent/v1/ws"),
        ("http://[::1]:8000", "ws://[::1]:8000/api/agent/v1/ws"),
        ("http://user@host", "ws://user@host/api/agent/v1/ws"),
    ],
)
def test_websocket_url(server_url: str, ws: str) -> None:
    assert websocket_url(server_url) == ws


@pytest.mark.parametrize("server_url", ["ftp://host", "localhost:8000", "https://"])
def test_websocket_url_refuses_non_http(server_url: str) -> None:
    with pytest.raises(ValueError):
        websocket_url(server_url)


def test_api_url_keeps_a_prefix() -> None:
    assert api_url("https://h/steward", "poll") == "https://h/steward/api/agent/v1/poll"


def test_authorization_header() -> None:
    assert authorization_header("a1", "s") == "Agent a1:s"


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (b'{"error": {"code": "pin_used", "message": "PIN already used"}}', 401,
         ("pin_used", "PIN already used")),
        (b'{"error": {"code": "rate_limited"}}', 429, ("rate_limited", "")),
        (b"<html>Bad Gateway</html>", 502, ("http_502", "<html>Bad Gateway</html>")),
        (b'{"detail": "Not Found"}', 404, ("http_404", '{"detail": "Not Found"}')),
        (b'{"error": "nope"}', 400, ("http_400", '{"error": "nope"}')),
        (b"", 500, ("http_500", "HTTP 500")),
        (b"\xff\xfe", 500, ("http_500", "\ufffd\ufffd")),
    ],
)  # fmt: skip
def test_error_from_body(body: bytes, status: int, expected: tuple[str, str]) -> None:
    assert error_from_body(body, status) == expected


def test_401_is_an_authentication_error() -> None:
    body = b'{"error": {"code": "agent_unauthorized", "message": "unknown agent"}}'
    error = error_for_status(401, body, {})
    assert isinstance(error, AuthenticationError)
    assert (error.code, error.message) == ("agent_unauthorized", "unknown agent")


@pytest.mark.parametrize("status", [429, 503])
def test_busy_statuses_carry_retry_after(status: int) -> None:
    error = error_for_status(status, b"", {"retry-after": "7"})
    assert isinstance(error, ServerBusy)
    assert error.retry_after == 7


def test_other_statuses_are_unexpected() -> None:
    error = error_for_status(400, b'{"error": {"code": "bad", "message": "m"}}', {})
    assert isinstance(error, UnexpectedResponse)
    assert (error.status, error.code) == (400, "bad")


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("999999") == 3600
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk) is None


def test_backoff_grows_with_full_jitter_and_resets() -> None:
    backoff = Backoff(initial_s=1, cap_s=60)
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    for ceiling in ceilings:
        assert 0 <= backoff.next_delay() <= ceiling
    assert backoff.attempt == len(ceilings)
    backoff.reset()
    assert backoff.next_delay() <= 1
