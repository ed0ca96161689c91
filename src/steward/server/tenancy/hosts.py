"""Which tenant a request is for, from its `Host` header.

`<slug>.<base domain>` is that tenant's host; the bare base domain is the platform host; any
other host (an IP literal, another domain, a deeper subdomain) is refused before any route runs.
The agent gateway and the health check answer on every host: agents are identified by their
credential, not by the name they dialled.

Resolution is cached for a bounded time, and every replica drops its entries at once when a
tenant's slug or status changes (the `tenants` channel of the bus).
"""

from __future__ import annotations

import ipaddress
import logging
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from steward.server.accounts.policy import address_allowed, security_settings
from steward.server.audit.service import record
from steward.server.bus import Bus
from steward.server.ratelimit import OncePerWindow
from steward.server.tenancy.models import Tenant, TenantStatus

log = logging.getLogger(__name__)

TENANTS_CHANNEL = "tenants"
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# Served on every host: agents dial an address, not a tenant; load balancers probe by IP.
HOST_INDEPENDENT_PREFIXES = ("/healthz", "/api/agent/", "/static/")


class HostKind(StrEnum):
    TENANT = "tenant"
    PLATFORM = "platform"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ParsedHost:
    kind: HostKind
    slug: str | None = None


def normalise_host(header: str) -> str:
    """Lower case, without the port and without a trailing dot (`Demo.Localhost.:8000`)."""
    host = header.strip().lower()
    if host.startswith("["):  # an IPv6 literal, with or without a port
        return host.split("]", 1)[0] + "]"
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.rstrip(".")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_host(header: str | None, base_domain: str) -> ParsedHost:
    if not header:
        return ParsedHost(HostKind.UNKNOWN)
    host = normalise_host(header)
    base = base_domain.strip().lower().rstrip(".")
    if not host or _is_ip_literal(host):
        return ParsedHost(HostKind.UNKNOWN)
    if host == base:
        return ParsedHost(HostKind.PLATFORM)
    label, dot, rest = host.partition(".")
    if (
        dot
        and rest == base
        and 1 <= len(label) <= 63
        and set(label) <= _LABEL_CHARS
        and not label.startswith("-")
        and not label.endswith("-")
    ):
        return ParsedHost(HostKind.TENANT, label)
    return ParsedHost(HostKind.UNKNOWN)


def tenant_origin(host_header: str, scheme: str, slug: str, base_domain: str) -> str:
    """`http://<slug>.<base>:<port>`, keeping the port the request came to."""
    host = host_header.strip()
    port = ""
    if host.count(":") == 1:
        port = ":" + host.rsplit(":", 1)[1]
    elif host.startswith("[") and "]:" in host:
        port = ":" + host.rsplit("]:", 1)[1]
    if not port[1:].isdigit():
        port = ""
    return f"{scheme}://{slug}.{base_domain.strip().lower().rstrip('.')}{port}"


@dataclass(frozen=True, slots=True)
class HostTenant:
    id: uuid.UUID
    slug: str
    name: str
    status: str
    # The console and API accept only these networks (empty: any); agents are not held by it.
    ip_allowlist: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.status == TenantStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class HostContext:
    """What the middleware found; routes read it from `request.state.host`."""

    kind: HostKind
    tenant: HostTenant | None = None


class TenantResolver:
    """slug -> tenant, cached for `ttl_s` (absent slugs for a shorter time), bounded in size."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        ttl_s: float = 30.0,
        negative_ttl_s: float = 5.0,
        max_entries: int = 50_000,
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, HostTenant | None]] = {}
        self.lookups = 0  # database lookups, for tests and metrics
        bus.subscribe(TENANTS_CHANNEL, self._on_change)

    async def resolve(self, slug: str) -> HostTenant | None:
        now = time.monotonic()
        cached = self._cache.get(slug)
        if cached is not None and cached[0] > now:
            return cached[1]
        self.lookups += 1
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(
                        Tenant.id, Tenant.slug, Tenant.name, Tenant.status, Tenant.settings
                    ).where(Tenant.slug == slug)
                )
            ).first()
        found = None
        if row is not None:
            allowlist = tuple(security_settings(row[4]).ip_allowlist)
            found = HostTenant(row[0], row[1], row[2], row[3], allowlist)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        ttl = self.ttl_s if found is not None else self.negative_ttl_s
        self._cache[slug] = (now + ttl, found)
        return found

    def forget(self, *slugs: str) -> None:
        for slug in slugs:
            self._cache.pop(slug, None)

    async def _on_change(self, message: dict[str, Any]) -> None:
        slugs = message.get("slugs")
        if isinstance(slugs, list):
            self.forget(*(str(s) for s in slugs))
        else:
            self._cache.clear()


async def announce_tenant_change(bus: Bus, *slugs: str) -> None:
    """Tell every replica (this one included) to forget what it cached of these tenants."""
    await bus.publish(TENANTS_CHANNEL, {"kind": "changed", "slugs": list(slugs)})


class HostMiddleware:
    """Resolves the host into `scope["state"]["host"]`, or refuses the request."""

    def __init__(self, app: ASGIApp, base_domain: str) -> None:
        self.app = app
        self.base_domain = base_domain
        self._refusals = OncePerWindow()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(HOST_INDEPENDENT_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        parsed = parse_host(headers.get(b"host", b"").decode("latin-1"), self.base_domain)
        context: HostContext | None = None
        if parsed.kind is HostKind.PLATFORM:
            context = HostContext(HostKind.PLATFORM)
        elif parsed.kind is HostKind.TENANT and parsed.slug is not None:
            resolver: TenantResolver = scope["app"].state.runtime.tenants
            tenant = await resolver.resolve(parsed.slug)
            if tenant is None:
                await self._refuse(scope, receive, send, 404, "unknown_tenant", "no such tenant")
                return
            context = HostContext(HostKind.TENANT, tenant)
            client = scope.get("client")
            address = client[0] if client else ""
            if not address_allowed(address, tenant.ip_allowlist):
                await self._refused_address(scope, tenant, address, path)
                await self._refuse(
                    scope,
                    receive,
                    send,
                    403,
                    "address_not_allowed",
                    "this organisation does not accept connections from your address",
                )
                return
        if context is None:
            await self._refuse(
                scope,
                receive,
                send,
                421,
                "unknown_host",
                f"this server answers for {self.base_domain} and its tenants' subdomains",
            )
            return
        scope.setdefault("state", {})["host"] = context
        await self.app(scope, receive, send)

    async def _refused_address(
        self, scope: Scope, tenant: HostTenant, address: str, path: str
    ) -> None:
        """Audited, at most once a minute per tenant and address (a flood is one line)."""
        if not self._refusals.first_in_window((tenant.id, address)):
            return
        headers = dict(scope.get("headers") or [])
        await record(
            scope["app"].state.runtime.system_sessions,
            tenant_id=tenant.id,
            actor="anonymous",
            action="address_refused",
            result="blocked",
            risk="medium",
            address=address,
            user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:300],
            target=path[:200],
        )

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = {"error": {"code": code, "message": message}}
        await JSONResponse(body, status_code=status)(scope, receive, send)
