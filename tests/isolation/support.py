"""Two tenants with one object of every kind, clients for A's users, and B's rows as evidence."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
from sqlalchemy import select

from steward.server.audit.models import AuditEvent
from steward.server.db.engine import standalone_session
from steward.server.db.models import Base, Device
from steward.server.web.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from tests.isolation.cases import Case
from tests.support import (
    LiveServer,
    SeededTenant,
    Seeder,
    agent_auth,
    enroll,
    login,
    run_async,
    tenant_client,
)

ROLES = ("admin", "viewer")
SHELL = {"type": "shell", "payload": {"command": "echo x"}}
HEARTBEAT = {
    "type": "heartbeat.light",
    "cpu_percent": 12.5,
    "memory_percent": 40.0,
    "ip_addresses": ["10.0.0.5"],
    "uptime_s": 100,
    "logged_in_users": ["student"],
}
# Rows that change on their own (heartbeats, the offline sweep) or on purpose when A knocks on
# B's door (the audit log): not evidence of a change by A.
VOLATILE_TABLES = frozenset(
    {"device_status", "device_metrics", "audit_events", "audit_heads", "user_sessions"}
)


@dataclass
class Side:
    """One tenant's seeded objects and credentials."""

    tenant: SeededTenant
    group: str
    device_ids: list[str]
    hostnames: list[str]
    command_id: str
    agent: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)  # role -> access token
    emails: dict[str, str] = field(default_factory=dict)  # role -> e-mail
    csrf: str = ""
    account: dict[str, str] = field(default_factory=dict)  # the viewer's user, session, token
    extra: dict[str, str] = field(default_factory=dict)  # objects of `seed_<area>.py` modules


@dataclass
class World:
    server: LiveServer
    a: Side
    b: Side
    b_rows: dict[str, list[str]]  # B's rows before any test ran

    @property
    def b_values(self) -> dict[str, str]:
        """What fills a case's path and body: B's objects, and A's admin for platform sign-in."""
        b = self.b
        return {
            "device_id": b.device_ids[0],
            "command_id": b.command_id,
            "name": b.group,
            "slug": b.tenant.slug,
            "hostname": b.hostnames[0],
            "admin_email": b.tenant.admin_email,
            "password": b.tenant.password,
            "a_admin_email": self.a.tenant.admin_email,
            **b.account,  # user_id, session_id, token_id: B's viewer's
            "a_user_id": self.a.account["user_id"],
            **b.extra,
        }

    @property
    def b_markers(self) -> list[str]:
        """Strings that only B's data contains: none may show up in an answer to A."""
        b = self.b
        return [
            *b.device_ids,
            *b.hostnames,
            b.command_id,
            b.group,
            b.tenant.admin_email,
            b.emails["viewer"],
            b.tenant.slug.upper(),  # B's organisation name
            str(b.tenant.tenant_id),
            b.tenant.slug,
            *b.account.values(),
            *b.extra.values(),
        ]

    def credentials(self, role: str, *, console: bool, of: Side | None = None) -> dict[str, str]:
        """Headers carrying A's (or `of`'s) token: a bearer for the API, else a browser's
        cookies (sent explicitly: httpx keeps cookies per IP, and every host here is 127.0.0.1)
        and the CSRF header htmx sends."""
        side = of or self.a
        if not console:
            return {"Authorization": f"Bearer {side.tokens[role]}"}
        cookie = f"{SESSION_COOKIE}={side.tokens[role]}; {CSRF_COOKIE}={self.a.csrf}"
        return {"Cookie": cookie, CSRF_HEADER: self.a.csrf}

    def client(
        self, role: str, slug: str | None, *, console: bool = False, of: Side | None = None
    ) -> httpx.Client:
        """A client with those credentials, on the host of `slug` (None: the platform host)."""
        return tenant_client(self.server, slug, **self.credentials(role, console=console, of=of))


def build_world(server: LiveServer, seeder: Seeder) -> World:
    a, b = _side(server, seeder, "a", devices=1), _side(server, seeder, "b", devices=2)
    for side in (a, b):
        side.tokens["admin"] = _token(server, side.tenant, side.tenant.admin_email)
        side.tokens["viewer"] = _token(server, side.tenant, side.emails["viewer"])
        side.account = _account_ids(server, side)
    b.account["mfa_token"] = _mfa_challenge(server, seeder, b.tenant)
    for side in (a, b):
        side.extra = _area_objects(server, side)
    a.csrf = _console_csrf(server, a.tenant)
    return World(server, a, b, tenant_rows(server, b.tenant.tenant_id))


def _area_objects(server: LiveServer, side: Side) -> dict[str, str]:
    """Objects of later areas (scripts, jobs, ...): each `seed_<area>.py` beside this file has
    `seed(api, side) -> {name: id}`, called with a client signed in as the tenant's admin. The
    names fill case templates; B's values must never show up in an answer to A."""
    import importlib
    import pkgutil
    from pathlib import Path

    found: dict[str, str] = {}
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=str):
        if module.name.startswith("seed_"):
            seed = importlib.import_module(f"tests.isolation.{module.name}").seed
            with login(server, side.tenant) as api:
                found.update(seed(api, side))
    return found


def _side(server: LiveServer, seeder: Seeder, label: str, devices: int) -> Side:
    tenant = seeder.tenant()
    emails = {"admin": tenant.admin_email, "viewer": seeder.user(tenant, "VIEWER")}
    group = f"{label}grp-{uuid.uuid4().hex[:8]}"
    creds = []
    hostnames = []
    for number in range(devices):
        hostnames.append(f"{label}host{number}-{uuid.uuid4().hex[:8]}")
        pin = seeder.pin(tenant, group=group if number == 0 else None)
        creds.append(enroll(server, pin, hostname=hostnames[-1]))
    # a device with a live state: one poll with a heartbeat, before any command exists
    poll(server, creds[0], [HEARTBEAT]).raise_for_status()
    with login(server, tenant) as api:
        created = api.post(f"/api/v1/devices/{creds[0]['device_id']}/commands", json=SHELL)
        created.raise_for_status()
    return Side(
        tenant=tenant,
        group=group,
        device_ids=[c["device_id"] for c in creds],
        hostnames=hostnames,
        command_id=created.json()["id"],
        agent=creds[0],
        emails=emails,
    )


def poll(server: LiveServer, creds: dict[str, str], messages: list[Any]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/agent/v1/poll",
        json={"messages": messages},
        headers=agent_auth(creds),
        timeout=10,
    )


def _token(server: LiveServer, tenant: SeededTenant, email: str) -> str:
    with login(server, tenant, email) as api:
        return str(api.headers["Authorization"]).removeprefix("Bearer ")


def _account_ids(server: LiveServer, side: Side) -> dict[str, str]:
    """The viewer's user id, one of their sessions and an API token of theirs."""
    host = side.tenant.slug
    with tenant_client(server, host, Authorization=f"Bearer {side.tokens['admin']}") as admin:
        users = admin.get("/api/v1/users").raise_for_status().json()
    with tenant_client(server, host, Authorization=f"Bearer {side.tokens['viewer']}") as viewer:
        sessions = viewer.get("/api/v1/account/sessions").raise_for_status().json()
        token = viewer.post(
            "/api/v1/account/tokens", json={"name": "script", "permissions": ["device.view"]}
        )
    return {
        "user_id": next(u["id"] for u in users if u["email"] == side.emails["viewer"]),
        "session_id": sessions[0]["id"],
        "token_id": token.raise_for_status().json()["id"],
    }


def _mfa_challenge(server: LiveServer, seeder: Seeder, tenant: SeededTenant) -> str:
    """The `mfa_token` a sign-in of a user with MFA gets, before the code is sent."""
    email = seeder.user(tenant, "ENGINEER")
    with login(server, tenant, email) as api:
        secret = api.post("/api/v1/account/mfa/setup").raise_for_status().json()["secret"]
        code = pyotp.TOTP(secret).now()
        api.post("/api/v1/account/mfa/confirm", json={"code": code}).raise_for_status()
    with tenant_client(server, tenant.slug) as anonymous:
        challenge = anonymous.post(
            "/api/v1/auth/login", json={"email": email, "password": tenant.password}
        )
    body = challenge.raise_for_status().json()
    assert body["status"] == "mfa_required", body
    return str(body["mfa_token"])


def _console_csrf(server: LiveServer, tenant: SeededTenant) -> str:
    """The CSRF cookie a browser gets from the sign-in form (and proof the console signs in)."""
    with tenant_client(server, tenant.slug) as browser:
        form = browser.get("/login")
        csrf = form.cookies[CSRF_COOKIE]
        signed_in = browser.post(
            "/login",
            data={"email": tenant.admin_email, "password": tenant.password, "csrf_token": csrf},
        )
    assert signed_in.status_code == 303 and signed_in.cookies.get(SESSION_COOKIE)
    return csrf


def send(http: httpx.Client, case: Case, values: dict[str, str], *, form: bool) -> httpx.Response:
    url = case.url(values)
    if case.method == "GET":
        return http.get(url)
    body = case.filled_body(values)
    if form:
        return http.request(case.method, url, data=body)
    return http.request(case.method, url, json=body)


def tenant_rows(server: LiveServer, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    """Every stable row of the tenant, table by table, read past the tenant filter."""

    async def read() -> dict[str, list[str]]:
        rows: dict[str, list[str]] = {}
        async with standalone_session(server.settings.effective_database_url) as session:
            for table in Base.metadata.sorted_tables:
                if table.name in VOLATILE_TABLES:
                    continue
                if table.name == "tenants":
                    where = table.c.id == tenant_id
                elif "tenant_id" in table.c:
                    where = table.c.tenant_id == tenant_id
                else:
                    continue
                result = await session.execute(select(table).where(where))
                rows[table.name] = sorted(repr(tuple(row)) for row in result)
        return rows

    rows: dict[str, list[str]] = run_async(read)
    return rows


def cross_tenant_events(server: LiveServer, tenant_id: uuid.UUID) -> list[AuditEvent]:
    async def read() -> list[AuditEvent]:
        async with standalone_session(server.settings.effective_database_url) as session:
            found = await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == tenant_id, AuditEvent.action == "cross_tenant_attempt"
                )
            )
            return list(found)

    events: list[AuditEvent] = run_async(read)
    return events


def device_ids(server: LiveServer, tenant_id: uuid.UUID) -> set[str]:
    """The tenant's devices, read past the tenant filter."""

    async def read() -> set[str]:
        async with standalone_session(server.settings.effective_database_url) as session:
            found = await session.scalars(select(Device.id).where(Device.tenant_id == tenant_id))
            return {str(i) for i in found}

    ids: set[str] = run_async(read)
    return ids


def leaks(world: World, response: httpx.Response, sent: str) -> list[str]:
    """B's markers in the answer that the request itself did not carry (an echo is no leak)."""
    seen = response.text + " " + response.headers.get("location", "")
    seen += " " + response.headers.get("hx-redirect", "")
    return [m for m in world.b_markers if m not in sent and m in seen]


def assert_b_unchanged(world: World) -> None:
    """B's rows are as they were, and B's admin still sees B's device and command as seeded."""
    assert tenant_rows(world.server, world.b.tenant.tenant_id) == world.b_rows
    with world.client("admin", world.b.tenant.slug, of=world.b) as b_api:
        device = b_api.get(f"/api/v1/devices/{world.b.device_ids[0]}")
        assert device.status_code == 200
        assert device.json()["hostname"] == world.b.hostnames[0]
        command = b_api.get(f"/api/v1/commands/{world.b.command_id}")
        assert command.status_code == 200 and command.json()["status"] == "queued"
