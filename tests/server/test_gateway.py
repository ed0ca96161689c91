"""The agent gateway (WebSocket and short poll) against a real server, on both databases.

These tests speak the protocol by hand, the way a third-party agent would.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from steward.protocol import MAX_MESSAGE_BYTES
from tests.support import LiveServer, SeededTenant, Seeder, agent_auth, enroll, login, wait_for

LIGHT = {
    "type": "heartbeat.light",
    "cpu_percent": 12.5,
    "memory_percent": 40.0,
    "ip_addresses": ["10.0.0.5"],
    "uptime_s": 100,
    "logged_in_users": ["student"],
}


@contextmanager
def _open(server: LiveServer, creds: dict[str, str]) -> Iterator[ClientConnection]:
    with connect(server.ws_url, additional_headers=agent_auth(creds), open_timeout=10) as ws:
        ws.send(json.dumps({"type": "hello", "agent_version": "9.9", "hostname": "pc-ws"}))
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        yield ws


def _recv(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def _device(api: httpx.Client, device_id: str) -> dict[str, Any]:
    return api.get(f"/api/v1/devices/{device_id}").json()


@pytest.fixture
def tenant(seeder: Seeder) -> SeededTenant:
    return seeder.tenant()


def test_enroll_errors_say_which(server: LiveServer, seeder: Seeder, tenant: SeededTenant) -> None:
    url = f"{server.url}/api/agent/v1/enroll"
    body = {"machine_id": "m-1", "hostname": "h"}
    pin = seeder.pin(tenant)
    enroll(server, pin)
    used = httpx.post(url, json=body | {"pin": pin})
    assert used.status_code == 401 and used.json()["error"]["code"] == "pin_used"
    expired_pin = seeder.pin(tenant, ttl_s=-1)
    expired = httpx.post(url, json=body | {"pin": expired_pin})
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "pin_expired"
    assert httpx.post(url, json=body).status_code == 422
    assert (
        httpx.post(url, content=b"[1,2", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_a_flood_of_wrong_pins_is_rate_limited(server: LiveServer) -> None:
    url = f"{server.url}/api/agent/v1/enroll"
    codes = []
    for attempt in range(7):
        response = httpx.post(
            url,
            json={"pin": f"x{attempt}", "machine_id": "m", "hostname": "h"},
            headers={"x-forwarded-for": "1.2.3.4"},  # not trusted: the peer address counts
        )
        codes.append((response.status_code, response.json()["error"]["code"]))
    assert codes[:5] == [(401, "pin_invalid")] * 5
    assert codes[5] == (429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0


def test_reenrolling_a_machine_keeps_its_device(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    first = enroll(server, seeder.pin(tenant), machine_id="same-machine", hostname="old")
    second = enroll(server, seeder.pin(tenant), machine_id="same-machine", hostname="new")
    assert first["device_id"] == second["device_id"]
    assert first["agent_id"] != second["agent_id"]
    with login(server, tenant) as api:
        devices = api.get("/api/v1/devices").json()
        assert [d["hostname"] for d in devices] == ["new"]
    # the old secret no longer works
    response = httpx.post(
        f"{server.url}/api/agent/v1/poll", json={"messages": []}, headers=agent_auth(first)
    )
    assert response.status_code == 401


def test_wrong_secret_is_refused_and_nothing_written(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    forged = creds | {"agent_secret": "not-the-secret"}
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url, additional_headers=agent_auth(forged), open_timeout=10)
    assert refused.value.response.status_code == 401
    response = httpx.post(
        f"{server.url}/api/agent/v1/poll",
        json={"messages": [LIGHT]},
        headers=agent_auth(forged),
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "agent_unauthorized"
    for header in ({}, {"Authorization": "Agent nonsense"}, {"Authorization": "Bearer x"}):
        assert (
            httpx.post(f"{server.url}/api/agent/v1/poll", json={}, headers=header).status_code
            == 401
        )
    time.sleep(0.5)
    with login(server, tenant) as api:
        device = _device(api, creds["device_id"])
        assert device["online"] is False and device["cpu_percent"] is None


def test_heartbeats_make_a_device_online_and_close_makes_it_offline(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    with login(server, tenant) as api:
        with _open(server, creds) as ws:
            ws.send(json.dumps(LIGHT))
            device = wait_for(lambda: (d := _device(api, creds["device_id"]))["cpu_percent"] and d)
            assert device["online"] is True
            assert device["ip_addresses"] == ["10.0.0.5"] and device["logged_in_users"] == [
                "student"
            ]
            assert device["transport"] == "ws" and device["agent_version"] == "9.9"
            wait_for(lambda: api.get(f"/api/v1/devices/{creds['device_id']}/metrics").json())
        started = time.monotonic()
        wait_for(lambda: not _device(api, creds["device_id"])["online"], timeout=5)
        assert time.monotonic() - started < 2


def test_a_silent_agent_goes_offline_after_missed_heartbeats(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    with login(server, tenant) as api:
        response = httpx.post(
            f"{server.url}/api/agent/v1/poll", json={"messages": [LIGHT]}, headers=agent_auth(creds)
        )
        assert response.status_code == 200
        wait_for(lambda: _device(api, creds["device_id"])["online"])
        # light interval is 1 s in this server: offline after 3 missed ones (+ sweep)
        wait_for(lambda: not _device(api, creds["device_id"])["online"], timeout=8)


def test_bad_frames_get_errors_and_the_connection_survives(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    with _open(server, creds) as ws:
        cases = {
            "{not json": "malformed_json",
            "[1, 2]": "malformed_message",
            '{"type": "reboot.everything"}': "unknown_type",
            '{"type": "heartbeat.light", "cpu_percent": "lots"}': "invalid_message",
            json.dumps(LIGHT | {"cpu_percent": 400}): "invalid_message",
            json.dumps({"type": "welcome"}): "unknown_type",
        }
        for frame, code in cases.items():
            ws.send(frame)
            error = _recv(ws, "error")
            assert error["code"] == code, frame
        ws.send(json.dumps(LIGHT))  # still usable
        ws.send(json.dumps({"type": "command.result", "command_id": "x", "status": "succeeded"}))


def test_first_frame_must_be_hello(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    with connect(server.ws_url, additional_headers=agent_auth(creds), open_timeout=10) as ws:
        ws.send(json.dumps(LIGHT))
        assert json.loads(ws.recv(timeout=5))["code"] == "hello_expected"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_a_frame_over_the_limit_closes_the_socket(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    ws = _open(server, creds).__enter__()
    # The server may close (1009) while the client is still sending: either end shows it.
    with pytest.raises((ConnectionClosed, OSError)) as closed:
        ws.send(json.dumps(LIGHT | {"padding": "x" * (MAX_MESSAGE_BYTES + 10)}))
        while True:
            ws.recv(timeout=5)
    if isinstance(closed.value, ConnectionClosed) and closed.value.rcvd is not None:
        # 1009 "too big"; with a multi-MiB frame still being written the close can race into
        # 1011. Either way nothing of the frame was processed: the socket is gone.
        assert closed.value.rcvd.code in (1009, 1011)
    with contextlib.suppress(Exception):
        ws.close()


def test_commands_are_pushed_over_the_socket_and_results_stored_once(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    with login(server, tenant) as api:
        queued_while_offline = api.post(
            f"/api/v1/devices/{creds['device_id']}/commands",
            json={"type": "shell", "payload": {"command": "echo early"}},
        ).json()["id"]
        with _open(server, creds) as ws:
            early = _recv(ws, "command.dispatch")
            assert early["command_id"] == queued_while_offline
            created = api.post(
                f"/api/v1/devices/{creds['device_id']}/commands",
                json={"type": "shell", "payload": {"command": "echo hi"}, "timeout_s": 5},
            ).json()
            started = time.monotonic()
            dispatch = _recv(ws, "command.dispatch")
            assert time.monotonic() - started < 1.0
            assert dispatch["command_id"] == created["id"]
            assert dispatch["payload"] == {"command": "echo hi"} and dispatch["timeout_s"] == 5
            # marked sent right after the frame went out (no transaction spans the send)
            wait_for(
                lambda: api.get(f"/api/v1/commands/{created['id']}").json()["status"] == "sent"
            )
            ws.send(json.dumps({"type": "command.ack", "command_id": created["id"]}))
            wait_for(
                lambda: api.get(f"/api/v1/commands/{created['id']}").json()["status"] == "running"
            )
            result = {
                "type": "command.result",
                "command_id": created["id"],
                "status": "succeeded",
                "exit_code": 0,
                "stdout": "hi\n",
            }
            ws.send(json.dumps(result))
            ws.send(json.dumps(result | {"stdout": "second copy", "status": "failed"}))
            command = wait_for(
                lambda: (
                    (c := api.get(f"/api/v1/commands/{created['id']}").json())["status"]
                    == "succeeded"
                    and c
                )
            )
            time.sleep(0.3)
            command = api.get(f"/api/v1/commands/{created['id']}").json()
            assert command["stdout"] == "hi\n" and command["exit_code"] == 0
            assert command["finished_at"] and command["sent_at"] and command["started_at"]


def test_an_agent_cannot_report_on_another_devices_command(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    victim = enroll(server, seeder.pin(tenant))
    attacker = enroll(server, seeder.pin(seeder.tenant()))
    with login(server, tenant) as api:
        command_id = api.post(
            f"/api/v1/devices/{victim['device_id']}/commands",
            json={"type": "shell", "payload": {"command": "echo x"}},
        ).json()["id"]
        with _open(server, attacker) as ws:
            ws.send(
                json.dumps(
                    {
                        "type": "command.result",
                        "command_id": command_id,
                        "status": "failed",
                        "stdout": "pwned",
                    }
                )
            )
        time.sleep(0.3)
        assert api.get(f"/api/v1/commands/{command_id}").json()["status"] == "queued"


def test_short_poll_carries_heartbeat_commands_and_results(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    poll_url = f"{server.url}/api/agent/v1/poll"
    with login(server, tenant) as api:
        command_id = api.post(
            f"/api/v1/devices/{creds['device_id']}/commands",
            json={"type": "shell", "payload": {"command": "echo polled"}},
        ).json()["id"]
        answer = httpx.post(poll_url, json={"messages": [LIGHT]}, headers=agent_auth(creds)).json()
        kinds = [m["type"] for m in answer["messages"]]
        assert "agent.config" in kinds and answer["light_heartbeat_interval_s"] > 0
        (dispatch,) = [m for m in answer["messages"] if m["type"] == "command.dispatch"]
        assert dispatch["command_id"] == command_id
        # not re-sent on the next poll
        again = httpx.post(poll_url, json={"messages": [LIGHT]}, headers=agent_auth(creds)).json()
        assert all(m["type"] != "command.dispatch" for m in again["messages"])
        result = {
            "type": "command.result",
            "command_id": command_id,
            "status": "failed",
            "exit_code": 3,
            "stderr": "boom",
        }
        httpx.post(
            poll_url, json={"messages": [result]}, headers=agent_auth(creds)
        ).raise_for_status()
        command = api.get(f"/api/v1/commands/{command_id}").json()
        assert command["status"] == "failed" and command["exit_code"] == 3
        device = wait_for(lambda: (d := _device(api, creds["device_id"]))["online"] and d)
        assert device["transport"] == "poll"
        bad = httpx.post(poll_url, json={"messages": [{"type": "nope"}]}, headers=agent_auth(creds))
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_message"


def test_watching_a_device_speeds_up_its_heartbeat(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    creds = enroll(server, seeder.pin(tenant))
    with _open(server, creds) as ws, login(server, tenant) as api:
        api.get(f"/api/v1/devices/{creds['device_id']}")
        config = _recv(ws, "agent.config")
        assert config["light_heartbeat_interval_s"] == server.settings.watched_heartbeat_interval_s


def test_hostnames_that_look_like_sql_or_html_are_plain_data(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    names = ["'; DROP TABLE devices; --", "<script>alert(1)</script>"]
    ids = [enroll(server, seeder.pin(tenant), hostname=name)["device_id"] for name in names]
    with login(server, tenant) as api:
        stored = {d["id"]: d["hostname"] for d in api.get("/api/v1/devices").json()}
        assert [stored[i] for i in ids] == names
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_concurrent_enrollments_all_succeed(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pins = [seeder.pin(tenant) for _ in range(24)]
    url = f"{server.url}/api/agent/v1/enroll"

    def attempt(index: int) -> int:
        body = {"pin": pins[index], "machine_id": f"c-{index}", "hostname": f"c-{index}"}
        return httpx.post(url, json=body, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(attempt, range(24)))
    assert statuses == [200] * 24
