"""The isolation suite's coverage table: every route of the app, how tenant A's users try it
against tenant B's objects, and what must come back.

Adding a route to the app makes `test_every_route_is_covered` fail until a case (or an
exemption with its reason) is added here. Paths and bodies are templates filled with B's values
(`{device_id}`, `{command_id}`, `{name}` = B's group, `{slug}`, ...; see `World.b_values`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import Mount, WebSocketRoute


class Kind(StrEnum):
    API = "api"  # tenant operator API: bearer token of one of A's users, on A's host
    CONSOLE = "console"  # tenant console: A's session cookie (+ CSRF), on A's host
    SIGN_IN = "sign-in"  # anonymous, B's credentials on A's host
    PLATFORM_API = "platform-api"  # A's token on the platform host (and on A's host: 404)
    PLATFORM_PAGE = "platform-page"  # A's cookie on the platform host (and on A's host: 404)
    AGENT = "agent"  # agent credential; proven by a scenario test in test_routes.py
    EXEMPT = "exempt"  # no tenant data, or proven elsewhere: `reason` says which


TENANT_KINDS = (Kind.API, Kind.CONSOLE)
PLATFORM_KINDS = (Kind.PLATFORM_API, Kind.PLATFORM_PAGE)


@dataclass(frozen=True)
class Case:
    method: str  # GET, POST, ..., WS for a WebSocket, MOUNT for a mounted app
    path: str  # exactly as the app declares it
    kind: Kind
    expect: int = 0  # status for A's admin (tenant kinds), or for A's token on the platform host
    body: dict[str, Any] = field(default_factory=dict)  # JSON (API) or form fields (console)
    query: str = ""
    modifies: bool = False  # B's rows are compared with the baseline afterwards
    manage: bool = False  # needs more than VIEWER: a viewer gets 403 instead
    variant: str = ""
    reason: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def id(self) -> str:
        label = f"{self.method} {self.path}"
        return f"{label} [{self.variant}]" if self.variant else label

    def url(self, values: dict[str, str]) -> str:
        return self.path.format_map(values) + self.query.format_map(values)

    def filled_body(self, values: dict[str, str]) -> dict[str, Any]:
        filled: dict[str, Any] = _fill(self.body, values)
        return filled


def _fill(template: Any, values: dict[str, str]) -> Any:
    """Strings of a body template formatted with `values`, nested dicts and lists included."""
    if isinstance(template, str):
        return template.format_map(values)
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, values) for v in template]
    return template


def api(method: str, path: str, expect: int, **kwargs: Any) -> Case:
    return Case(method, path, Kind.API, expect, **kwargs)


def page(method: str, path: str, expect: int, **kwargs: Any) -> Case:
    return Case(method, path, Kind.CONSOLE, expect, **kwargs)


def exempt(method: str, path: str, reason: str) -> Case:
    return Case(method, path, Kind.EXEMPT, reason=reason)


SHELL = {"type": "shell", "payload": {"command": "echo from-a"}}
GATEWAY_TEST = (
    "tests/server/test_gateway.py::test_an_agent_cannot_report_on_another_devices_command"
)

INVITE_TEST = "tests/accounts/test_flows.py::test_invitation_sets_the_first_password_once"

CASES: list[Case] = [
    # ---- operator API ------------------------------------------------------------------------
    api("GET", "/api/v1/devices", 200, variant="all"),
    api("GET", "/api/v1/devices", 200, query="?q={hostname}", variant="search B's hostname"),
    api("GET", "/api/v1/devices", 200, query="?group={name}", variant="filter B's group"),
    api("GET", "/api/v1/devices/counts", 200),
    api("GET", "/api/v1/devices/{device_id}", 404),
    api("GET", "/api/v1/devices/{device_id}/metrics", 404),
    api(
        "POST",
        "/api/v1/enrollment/pins",
        404,
        body={"group": "{name}"},
        modifies=True,
        manage=True,
        variant="into B's group",
    ),
    api(
        "POST",
        "/api/v1/enrollment/pins",
        201,
        modifies=True,
        manage=True,
        variant="default group: the PIN is A's",
    ),
    api(
        "POST", "/api/v1/devices/{device_id}/commands", 404, body=SHELL, modifies=True, manage=True
    ),
    api("GET", "/api/v1/commands/{command_id}", 404),
    api("POST", "/api/v1/commands/{command_id}/approve", 404, modifies=True, manage=True),
    api("POST", "/api/v1/commands/{command_id}/deny", 404, modifies=True, manage=True),
    api("GET", "/api/v1/devices/{device_id}/commands", 404),
    api("POST", "/api/v1/commands/assess", 200, body=SHELL, manage=True),
    api("GET", "/api/v1/approvals", 200, manage=True),
    api("GET", "/api/v1/audit/events", 200, variant="all"),
    api("GET", "/api/v1/audit/events", 200, query="?device_id={device_id}", variant="B's device"),
    api("GET", "/api/v1/audit/events", 200, query="?actor={admin_email}", variant="B's admin"),
    api("GET", "/api/v1/audit/export", 200, query="?format=csv"),
    api("GET", "/api/v1/audit/export", 200, query="?format=jsonl", variant="jsonl"),
    api("GET", "/api/v1/audit/verify", 200),
    # ---- accounts API: self-service (the caller's own account), users, tenant security -------
    api("GET", "/api/v1/account", 200),
    api(
        "POST",
        "/api/v1/account/password",
        422,
        body={"current_password": "{password}", "new_password": "short"},
        modifies=True,
        variant="weak new password: nothing changes",
    ),
    api("POST", "/api/v1/account/mfa/setup", 200, modifies=True, variant="A's own pending secret"),
    api("POST", "/api/v1/account/mfa/confirm", 401, body={"code": "000000"}, modifies=True),
    api("POST", "/api/v1/account/mfa/disable", 401, body={"code": "000000"}, modifies=True),
    api("POST", "/api/v1/account/mfa/recovery-codes", 401, body={"code": "000000"}, modifies=True),
    api("POST", "/api/v1/auth/step-up", 401, body={"code": "000000"}, modifies=True),
    api("GET", "/api/v1/account/sessions", 200),
    api("DELETE", "/api/v1/account/sessions/{session_id}", 404, modifies=True),
    api("GET", "/api/v1/account/tokens", 200),
    api(
        "POST",
        "/api/v1/account/tokens",
        201,
        body={"name": "made-by-a", "permissions": ["device.view"]},
        modifies=True,
        variant="A's own token",
    ),
    api("DELETE", "/api/v1/account/tokens/{token_id}", 404, modifies=True),
    api("GET", "/api/v1/users", 200, manage=True),
    api(
        "POST",
        "/api/v1/users",
        201,
        body={"email": "made-by-a@a.example", "password": "{password}", "role": "VIEWER"},
        modifies=True,
        manage=True,
        variant="A's own new user",
    ),
    api(
        "POST",
        "/api/v1/users",
        422,
        body={
            "email": "scoped-by-a@a.example",
            "password": "{password}",
            "scope": {"devices": ["{device_id}"], "groups": []},
        },
        modifies=True,
        manage=True,
        variant="scoped to B's device",
    ),
    api("GET", "/api/v1/users/{user_id}", 404, manage=True),
    api(
        "PATCH",
        "/api/v1/users/{user_id}",
        404,
        body={"role": "ADMIN", "is_active": False},
        modifies=True,
        manage=True,
    ),
    api("POST", "/api/v1/users/{user_id}/reset-mfa", 404, modifies=True, manage=True),
    api("POST", "/api/v1/users/{user_id}/invite", 404, modifies=True, manage=True),
    api("POST", "/api/v1/users/{user_id}/revoke-sessions", 404, modifies=True, manage=True),
    api("GET", "/api/v1/tenant/security", 200, manage=True),
    api(
        "PUT",
        "/api/v1/tenant/security",
        200,
        body={"session_idle_timeout_min": 120, "password_min_length": 12},
        modifies=True,
        manage=True,
        variant="only A's own settings",
    ),
    exempt(
        "POST",
        "/api/v1/auth/logout",
        "ends the caller's own session: tests/permissions/test_account.py::"
        "test_logging_out_ends_only_own_sessions",
    ),
    exempt(
        "POST",
        "/api/v1/account/sessions/revoke-all",
        "ends the caller's own sessions: tests/permissions/test_account.py::"
        "test_logging_out_ends_only_own_sessions",
    ),
    Case(
        "POST",
        "/api/v1/auth/mfa",
        Kind.SIGN_IN,
        401,
        body={"mfa_token": "{mfa_token}", "code": "000000"},
        variant="B's MFA challenge on A's host",
    ),
    Case(
        "POST",
        "/api/v1/auth/login",
        Kind.SIGN_IN,
        401,
        body={"email": "{admin_email}", "password": "{password}"},
        variant="B's admin on A's host",
    ),
    Case(
        "POST",
        "/api/v1/auth/login",
        Kind.SIGN_IN,
        401,
        body={"email": "{admin_email}", "password": "{password}", "tenant": "{slug}"},
        variant="B's admin on A's host naming B",
    ),
    # ---- agent gateway -----------------------------------------------------------------------
    Case("POST", "/api/agent/v1/enroll", Kind.AGENT, reason="test_a_pin_enrolls_into_its_tenant"),
    Case("POST", "/api/agent/v1/poll", Kind.AGENT, reason="test_an_agent_cannot_touch_b_commands"),
    exempt("WS", "/api/agent/v1/ws", f"covered elsewhere: {GATEWAY_TEST}"),
    # ---- platform API ------------------------------------------------------------------------
    Case(
        "POST",
        "/api/v1/platform/login",
        Kind.PLATFORM_API,
        401,
        body={"email": "{a_admin_email}", "password": "{password}"},
    ),
    Case("GET", "/api/v1/platform/tenants", Kind.PLATFORM_API, 401),
    Case(
        "POST",
        "/api/v1/platform/tenants",
        Kind.PLATFORM_API,
        401,
        body={
            "slug": "made-by-a",
            "name": "Made by A",
            "admin_email": "x@made-by-a.example",
            "admin_password": "correct-horse-battery",
        },
        modifies=True,
    ),
    Case(
        "PATCH",
        "/api/v1/platform/tenants/{slug}",
        Kind.PLATFORM_API,
        401,
        body={"status": "disabled"},
        modifies=True,
    ),
    # ---- console -----------------------------------------------------------------------------
    page("GET", "/devices", 200),
    page("GET", "/devices", 200, query="?q={hostname}", variant="search B's hostname"),
    page("GET", "/devices/table", 200),
    page("GET", "/devices/{device_id}", 404),
    page("GET", "/devices/{device_id}/status", 404),
    page("GET", "/devices/{device_id}/metrics.json", 404),
    page("GET", "/devices/{device_id}/commands", 404),
    page(
        "POST",
        "/devices/{device_id}/commands",
        404,
        body={"command": "echo from-a", "interpreter": "sh"},
        modifies=True,
        manage=True,
    ),
    page("GET", "/commands/{command_id}", 404),
    page("GET", "/commands/{command_id}/panel", 404),
    page("GET", "/approvals", 200, manage=True),
    page("POST", "/commands/{command_id}/approve", 404, modifies=True, manage=True),
    page("POST", "/commands/{command_id}/deny", 404, modifies=True, manage=True),
    page("GET", "/devices/enroll", 200, manage=True),
    page(
        "POST",
        "/devices/enroll",
        422,
        body={"group": "{name}", "ttl_s": "600"},
        modifies=True,
        manage=True,
        variant="into B's group",
    ),
    page("GET", "/groups", 200),
    page(
        "POST",
        "/groups",
        303,
        body={"name": "made-by-a"},
        modifies=True,
        manage=True,
        variant="A's own new group",
    ),
    page(
        "POST",
        "/groups/{name}/rename",
        404,
        body={"new_name": "renamed-by-a"},
        modifies=True,
        manage=True,
    ),
    page(
        "POST",
        "/groups/{name}/delete",
        404,
        body={"move_to": "all"},
        modifies=True,
        manage=True,
    ),
    page(
        "POST",
        "/devices/{device_id}/group",
        404,
        body={"group": "all"},
        modifies=True,
        manage=True,
    ),
    page("GET", "/audit", 200),
    page("GET", "/audit", 200, query="?device={device_id}", variant="B's device"),
    page("GET", "/audit/chain", 200),
    page("GET", "/audit/export", 200, query="?format=csv&actor={admin_email}"),
    page("GET", "/settings/organisation", 200),
    page(
        "POST",
        "/settings/organisation",
        303,
        body={"name": "A renamed", "locale": "en", "timezone": "UTC"},
        modifies=True,
        manage=True,
        variant="only A's own organisation",
    ),
    # console: one's own account, users, security settings
    page("GET", "/account", 200),
    page(
        "POST",
        "/account/password",
        422,
        body={"current_password": "not-the-password", "new_password": "a-new-long-phrase"},
        modifies=True,
    ),
    page("GET", "/account/mfa", 200, modifies=True, variant="A's own pending secret"),
    page("POST", "/account/mfa", 422, body={"code": "000000"}, modifies=True),
    page("POST", "/account/second-factor/disable", 422, body={"code": "000000"}, modifies=True),
    page(
        "POST", "/account/second-factor/recovery-codes", 422, body={"code": "000000"}, modifies=True
    ),
    page("POST", "/account/sessions/{session_id}/revoke", 404, modifies=True),
    exempt(
        "POST",
        "/account/sessions/revoke-all",
        "ends the caller's own sessions: tests/web/test_account.py::"
        "test_revoking_a_session_signs_that_browser_out",
    ),
    page(
        "POST",
        "/account/tokens",
        201,
        body={"name": "made-by-a", "permissions": "device.view", "expires_in_days": "1"},
        modifies=True,
        variant="A's own token",
    ),
    page("POST", "/account/tokens/{token_id}/revoke", 404, modifies=True),
    page("GET", "/step-up", 200, query="?next=/devices/{device_id}"),
    page("POST", "/step-up", 200, body={"code": "000000"}, modifies=True, variant="no MFA"),
    page("GET", "/users", 200, manage=True),
    page(
        "POST",
        "/users",
        303,
        body={
            "email": "made-by-a@example.test",
            "password": "a-long-first-phrase",
            "role": "VIEWER",
        },
        modifies=True,
        manage=True,
        variant="A's own new user",
    ),
    page("GET", "/users/{user_id}", 404, manage=True),
    page(
        "POST",
        "/users/{user_id}",
        404,
        body={"full_name": "renamed by A", "role": "VIEWER", "active": "1"},
        modifies=True,
        manage=True,
    ),
    page("POST", "/users/{user_id}/reset-mfa", 404, modifies=True, manage=True),
    page("POST", "/users/{user_id}/invite", 404, modifies=True, manage=True),
    page("POST", "/users/{user_id}/revoke-sessions", 404, modifies=True, manage=True),
    page("GET", "/settings/security", 200, manage=True),
    page(
        "POST",
        "/settings/security",
        303,
        body={"mfa_required": "off", "step_up": "if_enrolled"},
        modifies=True,
        manage=True,
        variant="only A's own settings",
    ),
    Case("GET", "/platform/login", Kind.PLATFORM_PAGE, 200),
    Case(
        "POST",
        "/platform/login",
        Kind.PLATFORM_PAGE,
        401,
        body={"email": "{a_admin_email}", "password": "{password}"},
    ),
    Case("GET", "/platform", Kind.PLATFORM_PAGE, 303),
    Case(
        "POST",
        "/platform/tenants",
        Kind.PLATFORM_PAGE,
        303,
        body={
            "slug": "made-by-a",
            "name": "Made by A",
            "admin_email": "x@made-by-a.example",
            "admin_password": "correct-horse-battery",
        },
        modifies=True,
    ),
    Case(
        "POST",
        "/platform/tenants/{slug}/status",
        Kind.PLATFORM_PAGE,
        303,
        body={"status": "disabled"},
        modifies=True,
    ),
    Case(
        "POST",
        "/login",
        Kind.SIGN_IN,
        401,
        body={"email": "{admin_email}", "password": "{password}"},
        variant="B's admin on A's host",
    ),
    # without an MFA challenge cookie both go back to /login; B's challenge on A's host is
    # refused by the API case above (the same complete_mfa checks the tenant)
    Case("GET", "/login/mfa", Kind.SIGN_IN, 303, variant="no challenge"),
    Case("POST", "/login/mfa", Kind.SIGN_IN, 303, body={"code": "000000"}, variant="no challenge"),
    # ---- no tenant data ----------------------------------------------------------------------
    exempt("GET", "/", "redirects to /devices or /platform; shows nothing"),
    exempt("GET", "/login", "the sign-in form; shows nothing of any tenant"),
    exempt("POST", "/logout", "only clears the caller's own cookie"),
    *(
        exempt(method, "/invite/{secret}", f"another tenant's link is 404 here: {INVITE_TEST}")
        for method in ("GET", "POST")
    ),
    exempt("GET", "/healthz", "database and connection counts, no tenant data"),
    exempt("GET", "/api/openapi.json", "the schema of the API, the same for everyone"),
    exempt("GET", "/api/docs", "Swagger UI page, no data"),
    exempt("GET", "/docs/oauth2-redirect", "Swagger UI helper page, no data"),
    exempt("MOUNT", "/static", "CSS, scripts and images shipped with the console"),
]


def _area_cases() -> list[Case]:
    """Cases kept beside this file in `cases_<area>.py` modules (each defines `CASES`)."""
    import importlib
    import pkgutil

    found: list[Case] = []
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("cases_"):
            found.extend(importlib.import_module(f"tests.isolation.{module.name}").CASES)
    return found


CASES.extend(_area_cases())


def discover_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if isinstance(original, Mount):
            found.add(("MOUNT", str(route.path)))
        elif isinstance(original, APIWebSocketRoute | WebSocketRoute):
            found.add(("WS", str(route.path)))
        else:
            methods = set(route.methods or ()) - {"HEAD"}
            assert methods, f"a route without methods: {route.path}"
            found.update((method, str(route.path)) for method in methods)
    return found


def openapi_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
