from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.agent import (
    EnrollmentError,
    ServerBusy,
    ServerUnreachable,
    UnexpectedResponse,
    enroll,
    load_state,
)
from steward.agent._identity import MACHINE_ID_ENV

ENROLLED = {"agent_id": "a-9", "agent_secret": "sek", "device_id": "d-9", "tenant": "acme"}


class EnrollServer:
    """Answers the enroll endpoint with `status` and `body`, and keeps the requests."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)
        self._response = (status, body, headers)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body, headers = self._response
        return httpx.Response(status, json=body, headers=headers)


async def test_enroll_stores_a_private_state(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MACHINE_ID_ENV, "machine-42")
    server = EnrollServer(200, ENROLLED)
    state = await enroll(
        "https://fleet.example/", " 123456 ", state_dir=state_dir, http_transport=server.transport
    )
    assert (state.agent_id, state.device_id, state.tenant) == ("a-9", "d-9", "acme")
    assert state.server_url == "https://fleet.example"
    assert load_state(state_dir) == state
    assert stat.S_IMODE((state_dir / "state.json").stat().st_mode) == 0o600

    [request] = server.requests
    assert str(request.url) == "https://fleet.example/api/agent/v1/enroll"
    body = json.loads(request.content)
    assert body["pin"] == "123456"
    assert body["machine_id"] == "machine-42"
    assert body["hostname"] and body["agent_version"] and body["os_name"]


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "pin_invalid"), (401, "pin_used"), (401, "pin_expired"), (429, "rate_limited")],
)
async def test_refusals_are_enrollment_errors(state_dir: Path, status: int, code: str) -> None:
    server = EnrollServer(status, {"error": {"code": code, "message": f"because {code}"}})
    with pytest.raises(EnrollmentError) as caught:
        await enroll("http://s", "1", state_dir=state_dir, http_transport=server.transport)
    assert (caught.value.code, caught.value.message) == (code, f"because {code}")
    assert not (state_dir / "state.json").exists()


async def test_busy_server(state_dir: Path) -> None:
    server = EnrollServer(
        503, {"error": {"code": "busy", "message": "later"}}, {"Retry-After": "3"}
    )
    with pytest.raises(ServerBusy) as caught:
        await enroll("http://s", "1", state_dir=state_dir, http_transport=server.transport)
    assert caught.value.retry_after == 3


async def test_nonsense_answer(state_dir: Path) -> None:
    server = EnrollServer(200, {"hello": "world"})
    with pytest.raises(UnexpectedResponse):
        await enroll("http://s", "1", state_dir=state_dir, http_transport=server.transport)


async def test_unreachable_server(state_dir: Path) -> None:
    with pytest.raises(ServerUnreachable):
        await enroll("http://127.0.0.1:9", "1", state_dir=state_dir)


@pytest.mark.parametrize(
    ("url", "pin", "code"),
    [("fleet.example", "1", "invalid_server_url"), ("http://s", "9" * 33, "pin_invalid")],
)
async def test_bad_input_is_refused_before_asking(
    state_dir: Path, url: str, pin: str, code: str
) -> None:
    server = EnrollServer(200, ENROLLED)
    with pytest.raises(EnrollmentError) as caught:
        await enroll(url, pin, state_dir=state_dir, http_transport=server.transport)
    assert caught.value.code == code
    assert server.requests == []
