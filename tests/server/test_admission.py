"""Admission control: busy servers refuse agents early with 503 and a jittered Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from steward.server.errors import ServerBusy
from steward.server.gateway.admission import AdmissionGate
from tests.support import Databases, LiveServer, Seeder, agent_auth, enroll, make_settings


async def test_a_handshake_that_cannot_get_a_turn_is_refused_with_retry_after() -> None:
    gate = AdmissionGate(concurrent=1, wait_s=0.05, retry_after_s=(5, 30))
    async with gate.slot():
        with pytest.raises(ServerBusy) as refused:
            async with gate.slot():
                pass
    assert 5 <= refused.value.retry_after_s <= 30 and refused.value.status_code == 503
    async with gate.slot():  # released again
        await asyncio.sleep(0)


@pytest.fixture
def full_server(databases: Databases, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(databases.create("sqlite"), tmp_path, max_agent_connections=0)
    live = LiveServer(settings).start()
    yield live
    live.stop()


def test_a_server_at_capacity_refuses_agents_with_503(full_server: LiveServer) -> None:
    seeder = Seeder(full_server.settings)
    creds = enroll(full_server, seeder.pin(seeder.tenant()))
    with pytest.raises(InvalidStatus) as refused:
        connect(full_server.ws_url, additional_headers=agent_auth(creds), open_timeout=10)
    response = refused.value.response
    assert response.status_code == 503
    assert 2 <= int(response.headers["Retry-After"]) <= 10
