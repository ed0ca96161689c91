"""One tenant with a user of every role, their tokens, and one object of every kind."""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from steward.server.accounts.models import Role
from steward.server.web.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from tests.support import LiveServer, SeededTenant, Seeder, enroll, login, tenant_client

ROLES = tuple(Role)
SHELL = {"type": "shell", "payload": {"command": "echo x"}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(server: LiveServer, tenant: SeededTenant, email: str) -> str:
    """A fresh session's access token (also good as the console's session cookie)."""
    with login(server, tenant, email) as api:
        return str(api.headers["Authorization"]).removeprefix("Bearer ")


def user_id(admin: httpx.Client, email: str) -> str:
    users = admin.get("/api/v1/users").raise_for_status().json()
    return str(next(u["id"] for u in users if u["email"] == email))


def set_scope(admin: httpx.Client, email: str, scope: dict[str, Any]) -> None:
    """As the tenant's admin: the user's scope (their sessions end: sign them in afterwards)."""
    uid = user_id(admin, email)
    admin.patch(f"/api/v1/users/{uid}", json={"scope": scope}).raise_for_status()


@dataclass
class Team:
    """Tenant A: a signed-in user of each role, a device in a group, a command, a target user."""

    server: LiveServer
    tenant: SeededTenant
    emails: dict[Role, str]
    tokens: dict[Role, str]
    device_id: str
    group: str
    command_id: str
    target_id: str  # a user the matrix may change (never one of the callers)
    author: str  # the token of an engineer whose commands wait for approval
    csrf: str

    @property
    def values(self) -> dict[str, str]:
        """What fills a request's path and body: the caller's OWN tenant's objects."""
        return {
            "device_id": self.device_id,
            "command_id": self.command_id,
            "name": self.group,
            "user_id": self.target_id,
            "password": self.tenant.password,
            "slug": self.tenant.slug,
        }

    def fresh(self, name: str) -> str:
        """A new value for each call: an unused e-mail or group name, a group to rename or
        delete, a command of someone else's waiting for approval."""
        unique = uuid.uuid4().hex[:8]
        if name == "new_email":
            return f"made-{unique}@{self.tenant.slug}.example"
        if name == "new_group":
            return f"grp-{unique}"
        if name == "spare_group":
            group = f"spare-{unique}"
            with self.client(Role.ADMIN, console=True) as admin:
                made = admin.post("/groups", data={"name": group})
            assert made.status_code in (200, 303), made.text[:300]
            return group
        if name == "pending_id":
            with tenant_client(self.server, self.tenant.slug, **bearer(self.author)) as api:
                created = api.post(f"/api/v1/devices/{self.device_id}/commands", json=SHELL)
            created.raise_for_status()
            assert created.json()["status"] == "pending_approval", created.json()
            return str(created.json()["id"])
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if module.name.startswith("requests_"):
                area = importlib.import_module(f"tests.permissions.{module.name}")
                makers = getattr(area, "FRESH", {})  # `requests_<area>.py`: name -> maker(team)
                if name in makers:
                    return str(makers[name](self))
        raise KeyError(f"no fresh value called {name!r}: add it to Team.fresh")

    def credentials(self, role: Role, *, console: bool) -> dict[str, str]:
        if not console:
            return bearer(self.tokens[role])
        cookie = f"{SESSION_COOKIE}={self.tokens[role]}; {CSRF_COOKIE}={self.csrf}"
        return {"Cookie": cookie, CSRF_HEADER: self.csrf}

    def client(self, role: Role, *, console: bool = False) -> httpx.Client:
        return tenant_client(
            self.server, self.tenant.slug, **self.credentials(role, console=console)
        )


def build_team(server: LiveServer, seeder: Seeder) -> Team:
    tenant = seeder.tenant()
    group = f"grp-{uuid.uuid4().hex[:8]}"
    device_id = enroll(server, seeder.pin(tenant, group=group), hostname="matrix-host")["device_id"]
    emails: dict[Role, str] = {
        role: seeder.user(tenant, role.value) for role in ROLES if role is not Role.ADMIN
    }
    emails[Role.ADMIN] = tenant.admin_email
    target = seeder.user(tenant, "VIEWER")
    author = seeder.user(tenant, "ENGINEER")
    with login(server, tenant) as admin:
        command = admin.post(f"/api/v1/devices/{device_id}/commands", json=SHELL)
        command.raise_for_status()
        # customers reach only what is assigned to them: the matrix is about roles, so give
        # the customer the device
        set_scope(admin, emails[Role.CUSTOMER], {"devices": [device_id]})
        set_scope(admin, author, {"approval_required": True})
        target_id = user_id(admin, target)
    tokens: dict[Role, str] = {
        role: sign_in(server, tenant, email) for role, email in emails.items()
    }
    return Team(
        server=server,
        tenant=tenant,
        emails=emails,
        tokens=tokens,
        device_id=device_id,
        group=group,
        command_id=str(command.json()["id"]),
        target_id=target_id,
        author=sign_in(server, tenant, author),
        csrf=console_csrf(server, tenant),
    )


def console_csrf(server: LiveServer, tenant: SeededTenant) -> str:
    """The CSRF cookie a browser gets with the sign-in form."""
    with tenant_client(server, tenant.slug) as browser:
        return str(browser.get("/login").cookies[CSRF_COOKIE])
