"""A tenant with a real agent process on this machine, and browser-like terminal sockets."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support import (
    LiveServer,
    SeededTenant,
    Seeder,
    login,
    start_agent_process,
    stop_process,
    tenant_client,
    wait_for,
)


@dataclass
class Terminal:
    """One browser socket: frames received so far, and how it closed."""

    socket: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""

    def send(self, **frame: Any) -> None:
        self.socket.send(json.dumps(frame))

    def type(self, text: str) -> None:
        self.send(type="input", data=text)

    def receive(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next frame, or None once the socket closed (`close_code` set)."""
        if self.close_code is not None:
            return None
        try:
            raw = self.socket.recv(timeout=timeout)
        except ConnectionClosed as closed:
            received = closed.rcvd
            self.close_code = received.code if received else 1006
            self.close_reason = received.reason if received else ""
            return None
        frame: dict[str, Any] = json.loads(raw)
        self.frames.append(frame)
        return frame

    def until(self, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
        """Receive until a frame satisfies `predicate`."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.receive(timeout=max(0.1, deadline - time.monotonic()))
            if frame is None:
                raise AssertionError(
                    f"closed {self.close_code} {self.close_reason}: {self.frames[-5:]}"
                )
            if predicate(frame):
                return frame
        raise AssertionError(f"no such frame; last: {self.frames[-5:]}")

    def output(self) -> str:
        return "".join(f["data"] for f in self.frames if f.get("type") == "output")

    def until_output(self, text: str, timeout: float = 15.0) -> None:
        if text not in self.output():
            self.until(lambda _f: text in self.output(), timeout)

    def until_closed(self, timeout: float = 15.0) -> tuple[int | None, str]:
        import time

        deadline = time.monotonic() + timeout
        while self.close_code is None and time.monotonic() < deadline:
            self.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert self.close_code is not None, "the socket did not close"
        return self.close_code, self.close_reason

    def close(self) -> None:
        self.socket.close()


def open_socket(
    server: LiveServer,
    slug: str,
    path: str,
    *,
    token: str | None = None,
    cookie: str | None = None,
    origin: str | None = None,
) -> Terminal:
    """A WebSocket to the tenant's host (`<slug>.localhost`, reached at 127.0.0.1)."""
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = f"steward_session={cookie}"
    host = f"{slug}.localhost:{server.port}"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    # Entered as a context manager (websockets warns otherwise); `Terminal.close` closes it.
    ws = connect(
        f"ws://{host}{path}",
        sock=sock,
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=10,
        max_size=4 * 1024 * 1024,
    ).__enter__()
    return Terminal(ws)


@dataclass
class World:
    server: LiveServer
    seeder: Seeder
    tenant: SeededTenant
    device_id: str
    agent: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)  # email -> access token

    def api(self, email: str | None = None) -> httpx.Client:
        """An API client signed in as `email` (one sign-in per user: hashing is slow)."""
        token = self.token(email)
        return tenant_client(self.server, self.tenant.slug, Authorization=f"Bearer {token}")

    def token(self, email: str | None = None) -> str:
        email = email or self.tenant.admin_email
        if email not in self.tokens:
            with login(self.server, self.tenant, email) as api:
                self.tokens[email] = api.headers["Authorization"].split(" ", 1)[1]
        return self.tokens[email]

    def terminal(self, email: str | None = None, device_id: str | None = None,
                 query: str = "?cols=80&rows=24") -> Terminal:  # fmt: skip
        path = f"/api/v1/devices/{device_id or self.device_id}/terminal{query}"
        return open_socket(self.server, self.tenant.slug, path, token=self.token(email))

    def watch(self, session_id: str, email: str | None = None) -> Terminal:
        path = f"/api/v1/terminal/sessions/{session_id}/watch"
        return open_socket(self.server, self.tenant.slug, path, token=self.token(email))

    def opened(self, email: str | None = None) -> tuple[Terminal, str]:
        """A terminal whose shell is running, and its session id."""
        terminal = self.terminal(email)
        session = terminal.until(lambda f: f.get("type") == "session")
        terminal.until(lambda f: f.get("type") == "opened")
        return terminal, str(session["session_id"])

    def policy(self, **changes: Any) -> dict[str, Any]:
        with self.api() as api:
            current = api.get("/api/v1/tenant/terminal-policy").json()
            response = api.put("/api/v1/tenant/terminal-policy", json=current | changes)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def audit(self, action: str) -> list[dict[str, Any]]:
        with self.api() as api:
            response = api.get("/api/v1/audit/events", params={"action": action, "limit": 200})
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def session(self, session_id: str) -> dict[str, Any]:
        with self.api() as api:
            response = api.get(f"/api/v1/terminal/sessions/{session_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


def plain_shell(directory: Path) -> str:
    """A shell for the tests' terminals that reads no start-up files: this machine's login
    files are not the tests' business (one of them ran `pyenv rehash`, whose lock, left behind
    by a shell killed mid-start, made every later login shell hang)."""
    path = directory / "plain-shell"
    path.write_text("#!/bin/sh\nexec bash --norc --noprofile -i\n")
    path.chmod(0o755)
    return str(path)


def use_plain_shell(api: httpx.Client, directory: Path) -> None:
    """Make the tenant's terminals start `plain_shell` (through the policy API)."""
    current = api.get("/api/v1/tenant/terminal-policy").json()
    changed = api.put(
        "/api/v1/tenant/terminal-policy", json=current | {"shell": plain_shell(directory)}
    )
    assert changed.status_code == 200, changed.text


def start_world(server: LiveServer, seeder: Seeder, base: Path) -> World:
    """A fresh tenant and one enrolled agent process, online."""
    tenant = seeder.tenant()
    process = start_agent_process(
        server.url, seeder.pin(tenant), base, f"terminal-{uuid.uuid4().hex}"
    )
    with login(server, tenant) as api:
        use_plain_shell(api, base)

        def online() -> str | None:
            for device in api.get("/api/v1/devices").json():
                if device["online"]:
                    return str(device["id"])
            return None

        device_id = wait_for(online, timeout=20)
    return World(server, seeder, tenant, device_id, process)


def stop_world(world: World) -> None:
    stop_process(world.agent)


def offline_session(base_url: str, host: str, authorization: str, device_id: str) -> str:
    """A terminal session on a device whose agent is not connected: the server makes its row
    (and the recording's header), says its id, then fails it. For tests that need any session
    id of a tenant."""
    port = int(str(base_url).rsplit(":", 1)[1].strip("/"))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with connect(
        f"ws://{host}/api/v1/devices/{device_id}/terminal",
        sock=sock,
        additional_headers={"Authorization": authorization},
        open_timeout=10,
    ) as ws:
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame.get("type") == "session":
                session_id = str(frame["session_id"])
            if frame.get("type") == "exit":
                assert frame["reason"] == "open_failed", frame
                return session_id
