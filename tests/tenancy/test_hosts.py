"""Which tenant a request is for: host parsing, refusal of other hosts, the resolver's cache and
its invalidation, and a token used on another tenant's host."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select

from steward.server.audit.models import AuditEvent
from steward.server.bus.memory import InMemoryBus
from steward.server.db.engine import standalone_session
from steward.server.tenancy.hosts import (
    HostKind,
    ParsedHost,
    TenantResolver,
    announce_tenant_change,
    parse_host,
    tenant_origin,
)
from steward.server.tenancy.service import create_tenant, set_tenant_status
from tests.support import LiveServer, Seeder, agent_auth, enroll, login, run_async, tenant_client

BASE = "steward.example"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("acme.steward.example", ParsedHost(HostKind.TENANT, "acme")),
        ("acme.steward.example:8443", ParsedHost(HostKind.TENANT, "acme")),
        ("ACME.Steward.Example", ParsedHost(HostKind.TENANT, "acme")),
        ("acme.steward.example.", ParsedHost(HostKind.TENANT, "acme")),
        ("acme.steward.example.:80", ParsedHost(HostKind.TENANT, "acme")),
        ("steward.example", ParsedHost(HostKind.PLATFORM)),
        ("steward.example:8000", ParsedHost(HostKind.PLATFORM)),
        ("Steward.Example.", ParsedHost(HostKind.PLATFORM)),
        ("127.0.0.1", ParsedHost(HostKind.UNKNOWN)),
        ("127.0.0.1:8000", ParsedHost(HostKind.UNKNOWN)),
        ("[::1]:8000", ParsedHost(HostKind.UNKNOWN)),
        ("::1", ParsedHost(HostKind.UNKNOWN)),
        ("a.b.steward.example", ParsedHost(HostKind.UNKNOWN)),  # deeper than one label
        ("acme.steward.example.evil.test", ParsedHost(HostKind.UNKNOWN)),
        ("steward.example.evil.test", ParsedHost(HostKind.UNKNOWN)),
        ("evilsteward.example", ParsedHost(HostKind.UNKNOWN)),
        ("-acme.steward.example", ParsedHost(HostKind.UNKNOWN)),
        ("ac_me.steward.example", ParsedHost(HostKind.UNKNOWN)),
        ("ac%2eme.steward.example", ParsedHost(HostKind.UNKNOWN)),
        (".steward.example", ParsedHost(HostKind.UNKNOWN)),
        ("", ParsedHost(HostKind.UNKNOWN)),
        (None, ParsedHost(HostKind.UNKNOWN)),
    ],
)
def test_parse_host(header: str | None, expected: ParsedHost) -> None:
    assert parse_host(header, BASE) == expected


def test_tenant_origin_keeps_the_port() -> None:
    assert tenant_origin("steward.example:8000", "http", "acme", BASE) == (
        "http://acme.steward.example:8000"
    )
    assert tenant_origin("steward.example", "https", "acme", BASE) == "https://acme.steward.example"
    assert tenant_origin("x:notaport", "http", "acme", BASE) == "http://acme.steward.example"


def _get(server: LiveServer, path: str, host: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"Host": host, **headers}, timeout=10)


def test_other_hosts_get_421_and_no_data(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with login(server, tenant) as api:
        token = api.headers["Authorization"]
        assert api.get("/api/v1/devices").status_code == 200
    for host in ("127.0.0.1", f"127.0.0.1:{server.port}", "evil.test", f"{tenant.slug}.evil.test"):
        response = _get(server, "/api/v1/devices", host, Authorization=token)
        assert response.status_code == 421, host
        assert response.json()["error"]["code"] == "unknown_host"
        assert _get(server, "/login", host).status_code == 421


def test_an_unknown_tenant_is_404(server: LiveServer) -> None:
    response = _get(server, "/login", f"nobody-{uuid.uuid4().hex[:6]}.localhost")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_tenant"


def test_the_host_is_read_case_and_dot_insensitively(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    for host in (f"{tenant.slug.upper()}.LOCALHOST:{server.port}", f"{tenant.slug}.localhost."):
        response = httpx.post(
            f"{server.url}/api/v1/auth/login",
            json={"email": tenant.admin_email, "password": tenant.password},
            headers={"Host": host},
        )
        assert response.status_code == 200, host


def test_health_and_agents_answer_on_any_host(server: LiveServer, seeder: Seeder) -> None:
    assert _get(server, "/healthz", "10.0.0.7").status_code == 200
    credentials = enroll(server, seeder.pin(seeder.tenant()))  # dials 127.0.0.1
    polled = httpx.post(
        f"{server.url}/api/agent/v1/poll",
        json={"messages": []},
        headers=agent_auth(credentials) | {"Host": "203.0.113.9"},
    )
    assert polled.status_code == 200


def test_a_token_on_another_tenants_host_is_refused_and_recorded(
    server: LiveServer, seeder: Seeder
) -> None:
    mine, theirs = seeder.tenant(), seeder.tenant()
    with login(server, mine) as api:
        token = api.headers["Authorization"]
    for host in (theirs.slug, None):  # another tenant's host, the platform host
        with tenant_client(server, host, Authorization=token) as http:
            response = http.get("/api/v1/devices")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "wrong_tenant"

    async def events() -> list[AuditEvent]:
        async with standalone_session(server.settings.effective_database_url) as session:
            rows = await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "cross_tenant_attempt")
            )
            return list(rows)

    recorded = run_async(events)
    by_tenant = {(e.tenant_id, e.result, e.detail["token_tenant"]) for e in recorded}
    assert (theirs.tenant_id, "blocked", str(mine.tenant_id)) in by_tenant
    # on the platform host the attempt is kept in the token's own tenant
    assert (mine.tenant_id, "blocked", str(mine.tenant_id)) in by_tenant


def test_a_tenant_named_in_the_body_is_not_trusted(server: LiveServer, seeder: Seeder) -> None:
    mine, theirs = seeder.tenant(), seeder.tenant()
    with tenant_client(server, mine.slug) as http:
        response = http.post(
            "/api/v1/auth/login",
            json={"tenant": theirs.slug, "email": theirs.admin_email, "password": theirs.password},
        )
    assert response.status_code == 401


async def test_the_resolver_caches_and_forgets_on_a_bus_message(database_url: str) -> None:
    async with standalone_session(database_url) as session:
        tenant = await create_tenant(session, f"c{uuid.uuid4().hex[:8]}", "Cached")
        await session.commit()
    from steward.server.db.engine import create_engine, create_session_factory

    engine = create_engine(database_url)
    bus = InMemoryBus()
    resolver = TenantResolver(create_session_factory(engine, system=True), bus, ttl_s=3600)
    try:
        first = await resolver.resolve(tenant.slug)
        assert first is not None and first.id == tenant.id and first.active
        assert await resolver.resolve(tenant.slug) == first
        assert resolver.lookups == 1  # the second came from the cache

        async with standalone_session(database_url) as session:
            await set_tenant_status(session, tenant.slug, "disabled")
            await session.commit()
        assert (await resolver.resolve(tenant.slug)).active  # type: ignore[union-attr]
        await announce_tenant_change(bus, tenant.slug)  # what every replica hears
        await asyncio.sleep(0.05)  # the bus delivers on its own task
        changed = await resolver.resolve(tenant.slug)
        assert changed is not None and not changed.active and resolver.lookups == 2

        assert await resolver.resolve("no-such-tenant") is None
        assert resolver.lookups == 3
        await bus.publish("tenants", {"kind": "changed"})  # no slugs: forget everything
        await asyncio.sleep(0.05)
        await resolver.resolve(tenant.slug)
        assert resolver.lookups == 4
    finally:
        await bus.stop()
        await engine.dispose()


def test_the_cache_ttl_is_bounded(server: LiveServer) -> None:
    resolver = server.app.state.runtime.tenants
    assert 0 < resolver.ttl_s <= 3600 and resolver.negative_ttl_s <= resolver.ttl_s
