"""Forwarding to syslog (UDP and TCP, RFC 5424 / 6587) and to a webhook, with real servers."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.audit import forward
from steward.server.audit.forward import AuditForwarder, sd_escape, syslog_message
from steward.server.audit.service import record
from tests.audit.helpers import new_tenant

Sessions = async_sessionmaker[AsyncSession]
RFC5424 = re.compile(
    r"^<(?P<pri>\d+)>1 (?P<ts>\S+Z) (?P<host>\S+) steward - (?P<msgid>\S+) "
    r"\[steward@32473 (?P<sd>.*?)\] (?P<json>\{.*\})$"
)


def test_sd_param_escaping() -> None:
    assert sd_escape('a"b\\c]d') == 'a\\"b\\\\c\\]d'
    message = syslog_message(
        {
            "tenant": "t",
            "seq": 1,
            "at": "2026-01-01T00:00:00.000000Z",
            "action": "login failed",
            "result": "failure",
            "risk": "high",
            "actor": 'user:"x"]',
        },
        "host name",
    ).decode()
    assert message.startswith("<84>1 2026-01-01T00:00:00.000000Z host_name steward - login_failed ")
    assert 'actor="user:\\"x\\"\\]"' in message


async def _record(system_sessions: Sessions, tenant_id: Any, n: int) -> None:
    await record(
        system_sessions,
        tenant_id=tenant_id,
        actor=f"user:{n}",
        actor_name="it@example.test",
        action="login.failed",
        result="failure",
        risk="medium",
        detail={"n": n},
    )


async def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_syslog_over_udp(system_sessions: Sessions) -> None:
    received: list[bytes] = []

    class Collector(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    forwarder = AuditForwarder(syslog_url=f"udp://127.0.0.1:{port}", hostname="steward-test")
    await forwarder.start()
    try:
        tenant_id = await new_tenant(system_sessions)
        await _record(system_sessions, tenant_id, 1)
        await _wait_for(lambda: received)
    finally:
        await forwarder.stop()
        transport.close()
    match = RFC5424.match(received[0].decode())
    assert match, received[0]
    assert match["pri"] == str(10 * 8 + 5) and match["msgid"] == "login.failed"
    assert f'tenant="{tenant_id}"' in match["sd"] and 'seq="1"' in match["sd"]
    assert 'result="failure"' in match["sd"] and 'risk="medium"' in match["sd"]
    assert json.loads(match["json"])["detail"] == {"n": 1}
    assert forward.installed() is None  # stopped: uninstalled


async def test_syslog_over_tcp_uses_octet_counting(system_sessions: Sessions) -> None:
    frames: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                length = int((await reader.readuntil(b" "))[:-1])
                frames.append(await reader.readexactly(length))
            except (asyncio.IncompleteReadError, ConnectionError):
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    forwarder = AuditForwarder(syslog_url=f"tcp://127.0.0.1:{port}")
    await forwarder.start()
    try:
        tenant_id = await new_tenant(system_sessions)
        for n in range(3):
            await _record(system_sessions, tenant_id, n)
        await _wait_for(lambda: len(frames) == 3)
    finally:
        await forwarder.stop()
        server.close()
        await server.wait_closed()
    seqs = [json.loads(RFC5424.match(f.decode())["json"])["seq"] for f in frames]  # type: ignore[index]
    assert seqs == [1, 2, 3]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server that fails its first request (to show the retry), then accepts."""
    bodies: list[dict[str, Any]] = []
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls["n"] += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 503 if calls["n"] == 1 else 204
            if status == 204:
                bodies.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/hook", bodies
    httpd.shutdown()
    httpd.server_close()


async def test_webhook_posts_json_and_retries(
    system_sessions: Sessions, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, bodies = webhook
    forwarder = AuditForwarder(webhook_url=url, retry_delay_s=0.05)
    await forwarder.start()
    try:
        tenant_id = await new_tenant(system_sessions)
        await _record(system_sessions, tenant_id, 7)
        await _wait_for(lambda: bodies)
    finally:
        await forwarder.stop()
    body = bodies[0]
    assert body["tenant"] == str(tenant_id) and body["seq"] == 1 and body["detail"] == {"n": 7}
    assert body["action"] == "login.failed" and len(body["hash"]) == 64
    assert forwarder.sent == 1 and forwarder.failed == 0


async def test_a_full_queue_drops_and_counts_without_failing_record(
    system_sessions: Sessions,
) -> None:
    # Nothing listens on this port; the sender is stuck retrying while the queue fills.
    forwarder = AuditForwarder(
        webhook_url="http://127.0.0.1:9/", queue_size=2, webhook_attempts=50, retry_delay_s=1
    )
    await forwarder.start()
    try:
        tenant_id = await new_tenant(system_sessions)
        for n in range(6):
            await _record(system_sessions, tenant_id, n)  # never raises, never waits
        assert forwarder.dropped >= 3
    finally:
        await forwarder.stop()
