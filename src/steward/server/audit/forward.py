"""Copies of audit events sent off the server as they are recorded: syslog and a webhook.

A copy held elsewhere is the defence against someone who can rewrite the whole audit table and
its head (see docs/audit.md). Forwarding never holds up or fails `record()`: events go into a
bounded queue, a background task sends them, and when the queue is full events are dropped and
counted, with a warning.

- Syslog (`STEWARD_AUDIT_SYSLOG_URL`, `udp://host:514` or `tcp://host:601`): RFC 5424 messages,
  facility authpriv, severity from the event's risk; over TCP with octet-counting framing
  (RFC 6587).
- Webhook (`STEWARD_AUDIT_WEBHOOK_URL`): each event POSTed as JSON, retried a few times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from steward.server.audit.models import AuditEvent
from steward.server.audit.query import event_record
from steward.server.settings import Settings

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
FACILITY_AUTHPRIV = 10
SEVERITY = {"high": 4, "medium": 5, "low": 6}  # warning, notice, informational
SD_ID = "steward@32473"  # 32473: the example enterprise number of RFC 5612
WEBHOOK_ATTEMPTS = 3
WEBHOOK_TIMEOUT_S = 5.0
_STOP_DRAIN_S = 2.0

_installed: AuditForwarder | None = None


def installed() -> AuditForwarder | None:
    """The forwarder of the running server, if forwarding is configured."""
    return _installed


def submit(event: AuditEvent) -> None:
    """Hand a committed event to the forwarder, if there is one (never raises)."""
    forwarder = _installed
    if forwarder is None:
        return
    try:
        forwarder.submit(event)
    except Exception:  # forwarding must never fail the record
        log.warning("audit forwarding: could not queue event", exc_info=True)


# ---- messages --------------------------------------------------------------------------------


def sd_escape(value: str) -> str:
    """An SD-PARAM value (RFC 5424 6.3.3): `"`, `\\` and `]` escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or `-` when nothing is left."""
    kept = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in value)[:limit]
    return kept or "-"


def syslog_message(record: dict[str, Any], hostname: str) -> bytes:
    """One RFC 5424 message for an exported event record (plus its `tenant`)."""
    pri = FACILITY_AUTHPRIV * 8 + SEVERITY.get(str(record.get("risk")), 6)
    params = " ".join(
        f'{name}="{sd_escape(str(record.get(key, "")))}"'
        for name, key in (
            ("tenant", "tenant"),
            ("seq", "seq"),
            ("result", "result"),
            ("risk", "risk"),
            ("actor", "actor"),
        )
    )
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    header = (
        f"<{pri}>1 {record['at']} {_printable(hostname, 255)} steward - "
        f"{_printable(str(record['action']), 32)}"
    )
    return f"{header} [{SD_ID} {params}] {body}".encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting frame: `LENGTH SP MESSAGE`."""
    return f"{len(message)} ".encode() + message


# ---- senders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyslogTarget:
    transport: str  # udp | tcp
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> SyslogTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("udp", "tcp") or not parts.hostname:
            raise ValueError(f"audit syslog URL must be udp://host:port or tcp://host:port: {url}")
        default = 514 if parts.scheme == "udp" else 601
        return cls(parts.scheme, parts.hostname, parts.port or default)


class _SyslogSender:
    def __init__(self, target: SyslogTarget) -> None:
        self.target = target
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.StreamWriter | None = None

    async def send(self, message: bytes) -> None:
        if self.target.transport == "udp":
            if self._udp is None:
                loop = asyncio.get_running_loop()
                self._udp, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=(self.target.host, self.target.port)
                )
            self._udp.sendto(message)
            return
        for attempt in range(2):  # a connection the collector closed is reopened once
            try:
                if self._tcp is None:
                    _, self._tcp = await asyncio.open_connection(self.target.host, self.target.port)
                self._tcp.write(octet_counted(message))
                await self._tcp.drain()
                return
            except OSError:
                await self._close_tcp()
                if attempt:
                    raise

    async def _close_tcp(self) -> None:
        writer, self._tcp = self._tcp, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await self._close_tcp()


class _WebhookSender:
    def __init__(self, url: str, attempts: int, retry_delay_s: float) -> None:
        self.url = url
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)

    async def send(self, record: dict[str, Any]) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._client.post(self.url, json=record)
                if response.is_success:
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt == self.attempts:
                raise RuntimeError(f"webhook failed {self.attempts} times, last: {problem}")
            await asyncio.sleep(self.retry_delay_s * attempt)

    async def close(self) -> None:
        await self._client.aclose()


# ---- the forwarder ---------------------------------------------------------------------------


class AuditForwarder:
    """A bounded queue of events and the task that sends them to syslog and the webhook."""

    def __init__(
        self,
        *,
        syslog_url: str = "",
        webhook_url: str = "",
        hostname: str | None = None,
        queue_size: int = QUEUE_SIZE,
        webhook_attempts: int = WEBHOOK_ATTEMPTS,
        retry_delay_s: float = 0.5,
    ) -> None:
        self.hostname = hostname or socket.gethostname()
        self.syslog = _SyslogSender(SyslogTarget.parse(syslog_url)) if syslog_url else None
        self.webhook_url = webhook_url
        self.webhook_attempts = webhook_attempts
        self.retry_delay_s = retry_delay_s
        self.queue_size = queue_size
        self.dropped = 0
        self.failed = 0
        self.sent = 0
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._webhook: _WebhookSender | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditForwarder | None:
        if not (settings.audit_syslog_url or settings.audit_webhook_url):
            return None
        return cls(syslog_url=settings.audit_syslog_url, webhook_url=settings.audit_webhook_url)

    async def start(self) -> None:
        global _installed
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self.queue_size)
        if self.webhook_url:
            self._webhook = _WebhookSender(
                self.webhook_url, self.webhook_attempts, self.retry_delay_s
            )
        self._task = asyncio.create_task(self._run(), name="audit forwarding")
        _installed = self

    async def stop(self) -> None:
        """Send what is queued (for a moment), then stop."""
        global _installed
        if _installed is self:
            _installed = None
        if self._queue is not None and self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), _STOP_DRAIN_S)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.syslog is not None:
            await self.syslog.close()
        if self._webhook is not None:
            await self._webhook.close()

    def submit(self, event: AuditEvent) -> None:
        """Queue a copy of the event; from any thread, never blocking."""
        if self._loop is None or self._loop.is_closed():
            return
        record = {"tenant": str(event.tenant_id), **event_record(event)}
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(record)
        else:
            self._loop.call_soon_threadsafe(self._put, record)

    def _put(self, record: dict[str, Any]) -> None:
        assert self._queue is not None
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8 ...: warn, do not flood
                log.warning(
                    "audit forwarding queue full (%d): %d events dropped so far",
                    self.queue_size,
                    self.dropped,
                )

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            record = await self._queue.get()
            try:
                await self._send(record)
            finally:
                self._queue.task_done()

    async def _send(self, record: dict[str, Any]) -> None:
        sent = True
        if self.syslog is not None:
            try:
                await self.syslog.send(syslog_message(record, self.hostname))
            except Exception as exc:
                sent = False
                self._failed("syslog", record, exc)
        if self._webhook is not None:
            try:
                await self._webhook.send(record)
            except Exception as exc:
                sent = False
                self._failed("webhook", record, exc)
        if sent:
            self.sent += 1

    def _failed(self, where: str, record: dict[str, Any], exc: Exception) -> None:
        self.failed += 1
        log.warning(
            "audit forwarding to %s failed for tenant %s #%s: %s",
            where,
            record.get("tenant"),
            record.get("seq"),
            exc,
        )
