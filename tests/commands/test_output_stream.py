"""Live command output: an agent speaking the real protocol through the poll endpoint, a real
server on SQLite and PostgreSQL, and the SSE stream read the way an API client would."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from steward.protocol import MAX_OUTPUT_BYTES, MAX_OUTPUT_CHUNK
from steward.server.web.security import SESSION_COOKIE
from tests.permissions.support import bearer, set_scope, sign_in
from tests.support import (
    LiveServer,
    SeededTenant,
    Seeder,
    agent_auth,
    enroll,
    login,
    tenant_client,
    wait_for,
)

Event = tuple[str, dict[str, Any]]


class Agent:
    """A device's agent, by hand: every call is one real poll."""

    def __init__(self, server: LiveServer, credentials: dict[str, str]) -> None:
        self.server = server
        self.credentials = credentials
        self.device_id = credentials["device_id"]

    def poll(self, *messages: dict[str, Any]) -> list[dict[str, Any]]:
        response = httpx.post(
            f"{self.server.url}/api/agent/v1/poll",
            json={"messages": list(messages)},
            headers=agent_auth(self.credentials),
            timeout=30,
        )
        response.raise_for_status()
        answer: list[dict[str, Any]] = response.json()["messages"]
        return answer

    def output(self, command_id: str, offset: int, data: str, stream: str = "stdout") -> None:
        self.poll(_chunk(command_id, offset, data, stream))

    def result(self, command_id: str, stdout: str = "", status: str = "succeeded") -> None:
        self.poll(
            {
                "type": "command.result",
                "command_id": command_id,
                "status": status,
                "exit_code": 0 if status == "succeeded" else 1,
                "stdout": stdout,
            }
        )


def _chunk(command_id: str, offset: int, data: str, stream: str = "stdout") -> dict[str, Any]:
    return {
        "type": "command.output",
        "command_id": command_id,
        "stream": stream,
        "offset": offset,
        "data": data,
    }


class EventStream:
    """An SSE stream read on a thread; events wait in a queue."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.status_code = 0
        self.content_type = ""
        self._opened = threading.Event()
        self._client = client
        self._url = url
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._url, timeout=httpx.Timeout(10, read=60)) as r:
                self._socket = r.extensions["network_stream"].get_extra_info("socket")
                self.status_code = r.status_code
                self.content_type = r.headers.get("content-type", "")
                self._opened.set()
                name = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        self.events.put((name, json.loads(line.removeprefix("data: "))))
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self._opened.set()
            self.events.put(None)  # closed

    def open(self) -> EventStream:
        self._thread.start()
        assert self._opened.wait(10), "the stream did not open"
        return self

    def close(self) -> None:
        """Hang up the way a closed browser tab does (from this thread, the reader's socket)."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        assert not self._thread.is_alive(), "the reader did not stop"

    def next(self, timeout: float = 10) -> Event | None:
        return self.events.get(timeout=timeout)

    def expect(self, name: str, timeout: float = 10) -> dict[str, Any]:
        event = self.next(timeout)
        assert event is not None, f"the stream closed before {name!r}"
        assert event[0] == name, f"expected {name!r}, got {event}"
        return event[1]

    def expect_closed(self, timeout: float = 10) -> None:
        assert self.next(timeout) is None, "the stream should have closed"


@contextlib.contextmanager
def following(client: httpx.Client, command_id: str, query: str = "") -> Iterator[EventStream]:
    stream = EventStream(client, f"/api/v1/commands/{command_id}/stream{query}").open()
    try:
        yield stream
    finally:
        stream.close()


@pytest.fixture
def tenant(seeder: Seeder) -> SeededTenant:
    return seeder.tenant()


@pytest.fixture
def agent(server: LiveServer, seeder: Seeder, tenant: SeededTenant) -> Agent:
    return Agent(server, enroll(server, seeder.pin(tenant)))


@pytest.fixture
def api(server: LiveServer, tenant: SeededTenant) -> Iterator[httpx.Client]:
    with login(server, tenant) as client:
        yield client


def start(api: httpx.Client, agent: Agent, *, ack: bool = True) -> str:
    """A shell command delivered to the agent (sent) and, with `ack`, running."""
    created = api.post(
        f"/api/v1/devices/{agent.device_id}/commands",
        json={"type": "shell", "payload": {"command": "make world"}},
    )
    assert created.status_code == 201, created.text
    command_id = str(created.json()["id"])
    dispatched = [m["command_id"] for m in agent.poll() if m["type"] == "command.dispatch"]
    assert command_id in dispatched
    if ack:
        agent.poll({"type": "command.ack", "command_id": command_id})
    return command_id


def stored(api: httpx.Client, command_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v1/commands/{command_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---- streaming -------------------------------------------------------------------------------


def test_chunks_arrive_in_order_and_the_result_ends_the_stream(
    api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent, ack=False)
    with following(api, command_id) as stream:
        assert stream.status_code == 200
        assert stream.content_type.startswith("text/event-stream")
        snapshot = stream.expect("snapshot")
        assert snapshot["status"] == "sent" and snapshot["stdout"] == ""
        agent.poll({"type": "command.ack", "command_id": command_id})
        assert stream.expect("status") == {"status": "running"}
        agent.output(command_id, 0, "compiling\n")
        agent.output(command_id, 0, "warning: x\n", stream="stderr")
        agent.output(command_id, 10, "linking\n")
        assert stream.expect("output") == {
            "stream": "stdout",
            "offset": 0,
            "data": "compiling\n",
            "truncated": False,
        }
        assert stream.expect("output")["data"] == "warning: x\n"
        third = stream.expect("output")
        assert (third["stream"], third["offset"], third["data"]) == ("stdout", 10, "linking\n")
        agent.result(command_id, stdout="compiling\nlinking\n")
        assert stream.expect("done") == {"status": "succeeded", "exit_code": 0, "error": ""}
        stream.expect_closed()


def test_a_late_subscriber_gets_the_output_so_far_without_repeats(
    api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent)
    agent.poll(
        _chunk(command_id, 0, "abc"),
        _chunk(command_id, 0, "abc"),  # a repeat
        _chunk(command_id, 1, "bcdef"),  # an overlap: only "def" is new
        _chunk(command_id, 9, "zzz"),  # a gap: cannot be placed
    )
    with following(api, command_id) as stream:
        snapshot = stream.expect("snapshot")
        assert snapshot["status"] == "running"
        assert snapshot["stdout"] == "abcdef" and snapshot["stdout_truncated"] is False
        agent.output(command_id, 3, "defgh")
        assert stream.expect("output") == {
            "stream": "stdout",
            "offset": 6,
            "data": "gh",
            "truncated": False,
        }
        agent.output(command_id, 0, "abcdefgh")  # all known: nothing is sent
        agent.output(command_id, 8, "!")
        assert stream.expect("output")["data"] == "!"
    with following(api, command_id, "?follow=false") as once:
        assert once.expect("snapshot")["stdout"] == "abcdefgh!"
        once.expect_closed()
    # a client that goes away is forgotten
    output = agent.server.app.state.runtime.hub.output
    wait_for(lambda: output.subscriber_count == 0)


def test_a_finished_command_gives_snapshot_and_done_at_once(
    api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent)
    agent.result(command_id, stdout="all done", status="failed")
    with following(api, command_id) as stream:
        snapshot = stream.expect("snapshot")
        assert snapshot["status"] == "failed" and snapshot["stdout"] == "all done"
        assert stream.expect("done") == {"status": "failed", "exit_code": 1, "error": ""}
        stream.expect_closed()


def test_output_for_another_devices_command_is_ignored(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant, api: httpx.Client, agent: Agent
) -> None:
    intruder = Agent(server, enroll(server, seeder.pin(tenant), hostname="intruder"))
    command_id = start(api, agent)
    with following(api, command_id) as stream:
        stream.expect("snapshot")
        intruder.output(command_id, 0, "forged by another device\n")
        agent.output(command_id, 0, "genuine\n")
        assert stream.expect("output")["data"] == "genuine\n"
        intruder.output(command_id, 8, "forged again\n")
        agent.output(command_id, 8, "more\n")
        assert stream.expect("output")["data"] == "more\n"
    wait_for(lambda: stored(api, command_id)["stdout"] == "genuine\nmore\n")


def test_output_beyond_the_cap_is_cut_and_marked_truncated(api: httpx.Client, agent: Agent) -> None:
    command_id = start(api, agent)
    block = "x" * MAX_OUTPUT_CHUNK
    chunks = MAX_OUTPUT_BYTES // MAX_OUTPUT_CHUNK + 1  # the last one starts at the cap
    for batch in range(0, chunks, 8):
        agent.poll(
            *(
                _chunk(command_id, i * MAX_OUTPUT_CHUNK, block)
                for i in range(batch, min(batch + 8, chunks))
            )
        )
    with following(api, command_id, "?follow=false") as once:
        snapshot = once.expect("snapshot")
    assert len(snapshot["stdout"]) == MAX_OUTPUT_BYTES and snapshot["stdout_truncated"] is True
    assert snapshot["stderr_truncated"] is False
    row = wait_for(lambda: (c := stored(api, command_id))["stdout_truncated"] and c)
    assert len(row["stdout"]) == MAX_OUTPUT_BYTES and row["status"] == "running"


# ---- write-behind ----------------------------------------------------------------------------


def test_partial_output_is_written_behind_and_never_over_a_result(
    api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent)
    agent.output(command_id, 0, "step 1\n")
    agent.output(command_id, 0, "oops\n", stream="stderr")
    row = wait_for(lambda: (c := stored(api, command_id))["stderr"] == "oops\n" and c)
    assert row["status"] == "running" and row["stdout"] == "step 1\n"
    agent.result(command_id, stdout="the whole output\n")
    agent.output(command_id, 7, "late chunk\n")  # after the result: refused
    wait_for(lambda: stored(api, command_id)["status"] == "succeeded")
    # several flush intervals later the result is still what the agent reported
    with pytest.raises(AssertionError):
        wait_for(lambda: stored(api, command_id)["stdout"] != "the whole output\n", timeout=1.0)


def test_output_of_a_command_not_yet_sent_is_refused(api: httpx.Client, agent: Agent) -> None:
    created = api.post(
        f"/api/v1/devices/{agent.device_id}/commands",
        json={"type": "shell", "payload": {"command": "echo later"}},
    ).json()
    # queued: the agent has not been given it, so it cannot have output
    httpx.post(
        f"{agent.server.url}/api/agent/v1/poll",
        json={"messages": [_chunk(created["id"], 0, "too early")]},
        headers=agent_auth(agent.credentials),
        timeout=10,
    ).raise_for_status()
    with following(api, created["id"], "?follow=false") as once:
        assert once.expect("snapshot")["stdout"] == ""


# ---- who may follow --------------------------------------------------------------------------


def test_the_console_cookie_follows_and_output_is_escaped_in_the_panel(
    server: LiveServer, tenant: SeededTenant, api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent)
    hostile = "<script>alert('owned')</script>\n"
    agent.output(command_id, 0, hostile)
    cookie = {"Cookie": f"{SESSION_COOKIE}={sign_in(server, tenant, tenant.admin_email)}"}
    with tenant_client(server, tenant.slug, **cookie) as browser:
        with following(browser, command_id) as stream:
            assert stream.status_code == 200
            assert stream.expect("snapshot")["stdout"] == hostile  # JSON: the script is data
        wait_for(lambda: stored(api, command_id)["stdout"] == hostile)
        panel = browser.get(f"/commands/{command_id}/panel")
        assert panel.status_code == 200, panel.text[:300]
        assert "<script>alert" not in panel.text
        assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in panel.text
        assert f'data-stream-url="/api/v1/commands/{command_id}/stream"' in panel.text


def test_another_tenants_command_is_not_found(
    server: LiveServer, seeder: Seeder, api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent)
    other = seeder.tenant()
    with login(server, other) as stranger:
        for query in ("", "?follow=false"):
            response = stranger.get(f"/api/v1/commands/{command_id}/stream{query}")
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "command_not_found"
        missing = stranger.get(f"/api/v1/commands/{uuid.uuid4()}/stream")
        assert missing.status_code == 404 and missing.json()["error"]["code"]
        bad = stranger.get("/api/v1/commands/not-a-uuid/stream")
        assert bad.status_code == 422 and "error" in bad.json()
    anonymous = httpx.get(
        f"{server.url}/api/v1/commands/{command_id}/stream",
        headers={"Host": f"{other.slug}.localhost:{server.port}"},
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"]
    assert server.app.state.runtime.hub.output.subscriber_count == 0


def test_users_out_of_scope_or_without_the_permission_are_refused(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant, api: httpx.Client, agent: Agent
) -> None:
    command_id = start(api, agent)
    url = f"/api/v1/commands/{command_id}/stream?follow=false"
    customer = seeder.user(tenant, "CUSTOMER")  # reaches only devices assigned to them
    with tenant_client(server, tenant.slug, **bearer(sign_in(server, tenant, customer))) as c:
        response = c.get(url)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "command_not_found"
    viewer = seeder.user(tenant, "VIEWER")
    set_scope(api, viewer, {"deny_permissions": ["device.view"]})
    with tenant_client(server, tenant.slug, **bearer(sign_in(server, tenant, viewer))) as v:
        response = v.get(url)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
    # an API token limited to the audit log may not follow output either
    reader = seeder.user(tenant, "VIEWER")
    with tenant_client(server, tenant.slug, **bearer(sign_in(server, tenant, reader))) as r:
        made = r.post("/api/v1/account/tokens", json={"name": "ci", "permissions": ["audit.view"]})
        assert made.status_code in (200, 201), made.text
        token = made.json()["token"]
    with tenant_client(server, tenant.slug, **bearer(token)) as scripted:
        response = scripted.get(url)
        assert response.status_code == 403, response.text
    # and the same viewer's full token may
    full = bearer(sign_in(server, tenant, reader))
    with (
        tenant_client(server, tenant.slug, **full) as r,
        following(r, command_id, "?follow=false") as once,
    ):
        assert once.expect("snapshot")["status"] == "running"


# ---- bounded memory --------------------------------------------------------------------------


async def test_a_slow_subscriber_is_told_to_reload_instead_of_queueing_forever() -> None:
    from steward.server.commands.output import SUBSCRIBER_QUEUE, Subscription

    subscription = Subscription(uuid.uuid4())
    for offset in range(SUBSCRIBER_QUEUE + 1):
        subscription.offer({"kind": "output", "offset": offset, "data": "x"})
    assert subscription.queue.qsize() == 1
    assert subscription.queue.get_nowait()["kind"] == "reset"
    subscription.offer({"kind": "output", "offset": 0, "data": "y"})  # then it starts over
    assert subscription.queue.get_nowait()["data"] == "y"
