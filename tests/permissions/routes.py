"""The routes of the app and the permission each one requires, read from the app itself.

A route's permission is found by walking its dependency tree for a callable with a
`permission` attribute (what `require`, `require_on_device` and `require_page` return). Routes
that need no permission must be in `NO_PERMISSION` with the reason; `REQUESTS` says how to call
the others (paths and bodies are templates filled with the caller's OWN tenant's values, see
`Team.values`). A route missing from `REQUESTS` is called with its path filled and no body: a
role without the permission must still get 403 before the body is read.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from steward.server.accounts.permissions import Permission
from tests.isolation.cases import discover_routes

Key = tuple[str, str]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    permissions: frozenset[Permission]

    @property
    def key(self) -> Key:
        return (self.method, self.path)

    @property
    def console(self) -> bool:
        """Console routes take the session cookie (and CSRF); the API takes a bearer token."""
        return not self.path.startswith("/api/")

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def required_permissions(dependant: Dependant) -> frozenset[Permission]:
    """Every permission a dependency of this route (at any depth) checks."""
    found: set[Permission] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        permission = getattr(current.call, "permission", None)
        if permission is not None:
            found.add(Permission(permission))
        stack.extend(current.dependencies)
    return frozenset(found)


def routes_of(app: FastAPI) -> list[Route]:
    """(method, path, permissions) of every HTTP route of the app, included routers flattened."""
    found: list[Route] = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if not isinstance(original, APIRoute):
            continue
        permissions = required_permissions(original.dependant)
        for method in sorted(set(context.methods or ()) - {"HEAD"}):
            found.append(Route(method, str(context.path), permissions))
    return found


@cache
def collection_app() -> FastAPI:
    """The app, built without starting it (no database is opened), to generate the cases."""
    from steward.server.app import create_app
    from tests.support import make_settings

    data_dir = Path(tempfile.mkdtemp(prefix="steward-permissions-"))
    return create_app(make_settings(f"sqlite+aiosqlite:///{data_dir / 'unused.db'}", data_dir))


def guarded_routes() -> list[Route]:
    return [route for route in routes_of(collection_app()) if route.permissions]


# ---- how to call a guarded route -------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    body: dict[str, Any] = field(default_factory=dict)  # JSON (API) or form fields (console)
    query: str = ""
    fresh: tuple[str, ...] = ()  # values made new for each call (see `Team.fresh`)
    path: str = ""  # when a path parameter takes a fresh value: the route's path, renamed


SHELL = {"type": "shell", "payload": {"command": "echo permitted"}}

REQUESTS: dict[Key, Request] = {
    ("POST", "/api/v1/users"): Request(
        {"email": "{new_email}", "password": "{password}", "role": "VIEWER"}, fresh=("new_email",)
    ),
    ("PATCH", "/api/v1/users/{user_id}"): Request({"full_name": "Renamed by the matrix"}),
    ("PUT", "/api/v1/tenant/security"): Request({}),  # the defaults, as they are
    ("POST", "/api/v1/enrollment/pins"): Request({}),
    ("POST", "/api/v1/devices/{device_id}/commands"): Request(SHELL),
    ("POST", "/api/v1/commands/assess"): Request(SHELL),
    # a command of someone else's, waiting for approval (nobody approves their own)
    ("POST", "/api/v1/commands/{command_id}/approve"): Request(
        fresh=("pending_id",), path="/api/v1/commands/{pending_id}/approve"
    ),
    ("POST", "/api/v1/commands/{command_id}/deny"): Request(
        fresh=("pending_id",), path="/api/v1/commands/{pending_id}/deny"
    ),
    ("POST", "/commands/{command_id}/approve"): Request(
        fresh=("pending_id",), path="/commands/{pending_id}/approve"
    ),
    ("POST", "/commands/{command_id}/deny"): Request(
        fresh=("pending_id",), path="/commands/{pending_id}/deny"
    ),
    ("GET", "/api/v1/audit/export"): Request(query="?format=csv"),
    ("POST", "/devices/enroll"): Request({"group": "{name}", "ttl_s": "600"}),
    ("POST", "/devices/{device_id}/commands"): Request(
        {"command": "echo permitted", "interpreter": "sh"}
    ),
    ("POST", "/groups"): Request({"name": "{new_group}"}, fresh=("new_group",)),
    ("POST", "/groups/{name}/rename"): Request(
        {"new_name": "{new_group}"},
        fresh=("spare_group", "new_group"),
        path="/groups/{spare_group}/rename",
    ),
    ("POST", "/groups/{name}/delete"): Request(
        {"move_to": "{name}"}, fresh=("spare_group",), path="/groups/{spare_group}/delete"
    ),
    ("POST", "/devices/{device_id}/group"): Request({"group": "{name}"}),  # where it already is
    ("POST", "/users"): Request(
        {"email": "{new_email}", "password": "{password}", "role": "VIEWER"}, fresh=("new_email",)
    ),
    ("POST", "/users/{user_id}"): Request(
        {"full_name": "Renamed by the matrix", "role": "VIEWER", "active": "1"}
    ),
    ("POST", "/settings/organisation"): Request(
        {"name": "Matrix organisation", "locale": "en", "timezone": "UTC"}
    ),
}


def _area_requests() -> dict[Key, Request]:
    """Requests kept beside this file in `requests_<area>.py` modules (each defines
    `REQUESTS`)."""
    import importlib
    import pkgutil

    found: dict[Key, Request] = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("requests_"):
            found.update(importlib.import_module(f"tests.permissions.{module.name}").REQUESTS)
    return found


REQUESTS.update(_area_requests())


# Where a handler refuses a role beyond the permission the route requires: (route, role) ->
# why. The matrix then expects 403 for that role although the role holds the permission.
REFUSED_BEYOND_PERMISSION: dict[tuple[Key, str], str] = {
    (("GET", "/settings/organisation"), "CUSTOMER"): (
        "the handler refuses customers the organisation profile (device.view is not enough)"
    ),
}


def _area_refusals() -> dict[tuple[Key, str], str]:
    import importlib
    import pkgutil

    found: dict[tuple[Key, str], str] = {}
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("requests_"):
            area = importlib.import_module(f"tests.permissions.{module.name}")
            found.update(getattr(area, "REFUSED_BEYOND_PERMISSION", {}))
    return found


REFUSED_BEYOND_PERMISSION.update(_area_refusals())


def request_for(route: Route) -> tuple[str, Request]:
    """The path template to call and the request to send."""
    request = REQUESTS.get(route.key, Request())
    return request.path or route.path, request


# ---- routes that need no permission, and why -------------------------------------------------

SELF = "self-service: acts on the caller's own account only"
SIGN_IN = "signing in: nobody is signed in yet"
PLATFORM = "platform administration: platform credentials, never a tenant role"
AGENT = "agent gateway: an agent's credential, never a user"
PUBLIC = "public: no tenant data"

NO_PERMISSION: dict[Key, str] = {
    ("POST", "/api/v1/auth/login"): SIGN_IN,
    ("POST", "/api/v1/auth/mfa"): SIGN_IN,
    ("POST", "/api/v1/auth/step-up"): SELF + " (a fresh second factor for this session)",
    ("POST", "/api/v1/auth/logout"): SELF + " (ends this session)",
    ("GET", "/api/v1/account"): SELF,
    ("POST", "/api/v1/account/password"): SELF,
    ("POST", "/api/v1/account/mfa/setup"): SELF,
    ("POST", "/api/v1/account/mfa/confirm"): SELF,
    ("POST", "/api/v1/account/mfa/disable"): SELF,
    ("POST", "/api/v1/account/mfa/recovery-codes"): SELF,
    ("GET", "/api/v1/account/sessions"): SELF,
    ("DELETE", "/api/v1/account/sessions/{session_id}"): SELF,
    ("POST", "/api/v1/account/sessions/revoke-all"): SELF,
    ("GET", "/api/v1/account/tokens"): SELF,
    ("POST", "/api/v1/account/tokens"): SELF + " (within the caller's own permissions)",
    ("DELETE", "/api/v1/account/tokens/{token_id}"): SELF,
    ("POST", "/api/agent/v1/enroll"): AGENT,
    ("POST", "/api/agent/v1/poll"): AGENT,
    ("WS", "/api/agent/v1/ws"): AGENT,
    ("WS", "/api/v1/devices/{device_id}/terminal"): (
        "terminal.open on the device, checked in the socket handler: "
        "tests/terminal/test_sockets.py::test_refused_roles_devices_and_credentials"
    ),
    ("WS", "/api/v1/terminal/sessions/{terminal_session_id}/watch"): (
        "terminal.open on the device or tenant.manage, checked in the socket handler: "
        "tests/terminal/test_sockets.py::test_watching_live_and_terminating"
    ),
    ("POST", "/api/v1/platform/login"): PLATFORM,
    ("GET", "/api/v1/platform/tenants"): PLATFORM,
    ("POST", "/api/v1/platform/tenants"): PLATFORM,
    ("PATCH", "/api/v1/platform/tenants/{slug}"): PLATFORM,
    ("GET", "/platform/login"): PLATFORM,
    ("POST", "/platform/login"): PLATFORM,
    ("GET", "/platform"): PLATFORM,
    ("POST", "/platform/tenants"): PLATFORM,
    ("POST", "/platform/tenants/{slug}/status"): PLATFORM,
    ("GET", "/"): PUBLIC + " (redirects to /devices or /platform)",
    ("GET", "/login"): SIGN_IN,
    ("POST", "/login"): SIGN_IN,
    ("GET", "/login/mfa"): SIGN_IN,
    ("POST", "/login/mfa"): SIGN_IN,
    ("GET", "/invite/{secret}"): SIGN_IN + " (an invited user's one-time link)",
    ("POST", "/invite/{secret}"): SIGN_IN + " (an invited user's one-time link)",
    ("POST", "/logout"): SELF + " (clears the caller's cookie)",
    ("GET", "/account"): SELF,
    ("POST", "/account/password"): SELF,
    ("GET", "/account/mfa"): SELF,
    ("POST", "/account/mfa"): SELF,
    ("POST", "/account/second-factor/disable"): SELF,
    ("POST", "/account/second-factor/recovery-codes"): SELF,
    ("POST", "/account/sessions/revoke-all"): SELF,
    ("POST", "/account/sessions/{session_id}/revoke"): SELF,
    ("POST", "/account/tokens"): SELF + " (within the caller's own permissions)",
    ("POST", "/account/tokens/{token_id}/revoke"): SELF,
    ("GET", "/step-up"): SELF + " (a fresh second factor for this session)",
    ("POST", "/step-up"): SELF + " (a fresh second factor for this session)",
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC + " (the API schema)",
    ("GET", "/api/docs"): PUBLIC + " (Swagger UI)",
    ("GET", "/docs/oauth2-redirect"): PUBLIC + " (Swagger UI)",
    ("MOUNT", "/static"): PUBLIC + " (CSS, scripts, images)",
}

# Self-service reads every role may do (proven by `test_every_role_reads_its_own_account`).
SELF_READS = ["/api/v1/account", "/api/v1/account/sessions", "/api/v1/account/tokens"]


def all_route_keys(app: FastAPI) -> set[Key]:
    return discover_routes(app)
