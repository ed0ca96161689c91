"""Tenant isolation, route by route: tenant A's users and tokens can neither read, list, modify
nor delete tenant B's objects, and a token is good on its own tenant's host only.

The routes come from the app itself; `test_every_route_is_covered` fails when one is missing
from the table in `cases.py`, so the suite grows with the project.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable

import httpx
import pytest

from steward.server.web.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from tests.isolation.cases import (
    CASES,
    PLATFORM_KINDS,
    TENANT_KINDS,
    Case,
    Kind,
    discover_routes,
    openapi_routes,
)
from tests.isolation.support import (
    ROLES,
    World,
    assert_b_unchanged,
    build_world,
    cross_tenant_events,
    device_ids,
    leaks,
    poll,
    send,
    tenant_rows,
)
from tests.support import LiveServer, Seeder, host_header, tenant_client


@pytest.fixture(scope="module")
def world(server: LiveServer, seeder: Seeder) -> World:
    return build_world(server, seeder)


def _cases(kinds: Iterable[Kind]) -> list[Case]:
    return [case for case in CASES if case.kind in kinds]


def _by_role(kinds: Iterable[Kind]) -> list[object]:
    return [
        pytest.param(case, role, id=f"{role}:{case.id}") for case in _cases(kinds) for role in ROLES
    ]


def _params(kinds: Iterable[Kind]) -> list[object]:
    return [pytest.param(case, id=case.id) for case in _cases(kinds)]


def _sent(case: Case, values: dict[str, str], host: str = "") -> str:
    return " ".join((host, case.url(values), repr(case.filled_body(values))))


def _shown(response: httpx.Response) -> str:
    return f"{response.status_code}: {response.text[:300]}"


# ---- the table against the app ---------------------------------------------------------------


def test_every_route_is_covered(server: LiveServer) -> None:
    discovered = discover_routes(server.app)
    covered = {case.key for case in CASES}
    missing = sorted(discovered - covered)
    stale = sorted(covered - discovered)
    assert not missing, f"routes with no isolation case in tests/isolation/cases.py: {missing}"
    assert not stale, f"cases for routes the app no longer has: {stale}"
    # the walk finds at least what the OpenAPI schema knows of
    assert openapi_routes(server.app) <= discovered


def test_every_exemption_says_why() -> None:
    module = sys.modules[__name__]
    for case in _cases((Kind.EXEMPT, Kind.AGENT)):
        assert case.reason.strip(), f"{case.id} is exempt without a reason"
        if case.kind is Kind.AGENT:  # proven here: the reason names the test
            assert inspect.isfunction(getattr(module, case.reason, None)), case.reason


# ---- A's users on A's host, aiming at B's objects --------------------------------------------


@pytest.mark.parametrize(("case", "role"), _by_role(TENANT_KINDS))
def test_a_cannot_reach_b_objects(world: World, case: Case, role: str) -> None:
    console = case.kind is Kind.CONSOLE
    values = world.b_values
    with world.client(role, world.a.tenant.slug, console=console) as http:
        response = send(http, case, values, form=console)
    allowed = {case.expect} | ({403} if role != "admin" and case.manage else set())
    assert response.status_code in allowed, _shown(response)
    if response.status_code == 404 and not console:
        assert response.json()["error"]["code"].endswith("not_found"), _shown(response)
    assert not leaks(world, response, _sent(case, values)), _shown(response)
    if case.path == "/api/v1/devices":
        assert {d["id"] for d in response.json()} <= device_ids(
            world.server, world.a.tenant.tenant_id
        )
    if case.path == "/api/v1/devices/counts":
        assert response.json()["total"] == len(device_ids(world.server, world.a.tenant.tenant_id))
    if case.modifies:
        assert_b_unchanged(world)


def test_a_device_cannot_join_b_group(world: World) -> None:
    a_device = world.a.device_ids[0]
    before = tenant_rows(world.server, world.a.tenant.tenant_id)["devices"]
    with world.client("admin", world.a.tenant.slug, console=True) as http:
        response = http.post(f"/devices/{a_device}/group", data={"group": world.b.group})
    assert response.status_code == 422, _shown(response)
    assert tenant_rows(world.server, world.a.tenant.tenant_id)["devices"] == before
    assert_b_unchanged(world)


# ---- A's credentials on someone else's host --------------------------------------------------


@pytest.mark.parametrize("case", _params(TENANT_KINDS))
def test_a_credentials_work_on_a_host_only(world: World, case: Case) -> None:
    console = case.kind is Kind.CONSOLE
    values = world.b_values
    b_host = host_header(world.server, world.b.tenant.slug)["Host"]
    target = f"{case.method} {case.path.format_map(values)}"
    recorded_before = len(cross_tenant_events(world.server, world.b.tenant.tenant_id))

    with world.client("admin", world.b.tenant.slug, console=console) as http:
        on_b = send(http, case, values, form=console)
    assert on_b.status_code == 403, _shown(on_b)
    if not console or case.path.endswith(".json"):
        assert on_b.json()["error"]["code"] == "wrong_tenant"
    assert not leaks(world, on_b, _sent(case, values, b_host)), _shown(on_b)
    events = cross_tenant_events(world.server, world.b.tenant.tenant_id)
    assert len(events) > recorded_before
    assert any(
        e.target == target
        and e.result == "blocked"
        and e.detail["token_tenant"] == str(world.a.tenant.tenant_id)
        for e in events
    ), target

    with world.client("admin", None, console=console) as http:  # the platform host
        on_platform = send(http, case, values, form=console)
    assert on_platform.status_code == 403, _shown(on_platform)
    assert not leaks(world, on_platform, _sent(case, values)), _shown(on_platform)

    headers = world.credentials("admin", console=console)  # an IP literal: no tenant at all
    with httpx.Client(base_url=world.server.url, headers=headers, timeout=10) as http:
        on_ip = send(http, case, values, form=console)
    assert on_ip.status_code == 421 and on_ip.json()["error"]["code"] == "unknown_host"
    if case.modifies:
        assert_b_unchanged(world)


@pytest.mark.parametrize("case", _params((Kind.SIGN_IN,)))
def test_b_users_cannot_sign_in_on_a_host(world: World, case: Case) -> None:
    csrf = world.a.csrf
    browser = {"Cookie": f"{CSRF_COOKIE}={csrf}", CSRF_HEADER: csrf}
    console = not case.path.startswith("/api/")
    with tenant_client(world.server, world.a.tenant.slug, **(browser if console else {})) as http:
        response = send(http, case, world.b_values, form=console)
    assert response.status_code == case.expect, _shown(response)
    assert SESSION_COOKIE not in response.cookies and "access_token" not in response.text


# ---- platform routes -------------------------------------------------------------------------


@pytest.mark.parametrize("case", _params(PLATFORM_KINDS))
def test_platform_routes_refuse_tenant_credentials(world: World, case: Case) -> None:
    console = case.kind is Kind.PLATFORM_PAGE
    values = world.b_values
    with world.client("admin", None, console=console) as http:
        on_platform = send(http, case, values, form=console)
    assert on_platform.status_code == case.expect, _shown(on_platform)
    if on_platform.status_code == 303:
        assert on_platform.headers["location"] == "/platform/login"
    assert SESSION_COOKIE not in on_platform.cookies
    assert not leaks(world, on_platform, _sent(case, values)), _shown(on_platform)

    with world.client("admin", world.a.tenant.slug, console=console) as http:
        on_tenant_host = send(http, case, values, form=console)
    assert on_tenant_host.status_code == 404, _shown(on_tenant_host)
    if case.modifies:
        assert_b_unchanged(world)


# ---- the agent gateway -----------------------------------------------------------------------


def test_an_agent_cannot_touch_b_commands(world: World) -> None:
    """A's agent acknowledges and reports on B's command by short poll: refused or ignored."""
    forged = [
        {"type": "command.ack", "command_id": world.b.command_id},
        {
            "type": "command.result",
            "command_id": world.b.command_id,
            "status": "failed",
            "exit_code": 1,
            "stdout": "pwned",
        },
    ]
    answer = poll(world.server, world.a.agent, forged)
    assert answer.status_code in (200, 403, 404, 422), _shown(answer)
    assert not leaks(world, answer, repr(forged)), _shown(answer)
    # and a plain poll never hands A's agent B's command
    plain = poll(world.server, world.a.agent, [])
    assert plain.status_code == 200 and not leaks(world, plain, ""), _shown(plain)
    assert_b_unchanged(world)


def test_a_pin_enrolls_into_its_tenant(world: World, seeder: Seeder) -> None:
    """Agents are identified by credential, not by the host they dial: A's PIN sent to B's host
    makes a device of A."""
    pin = seeder.pin(world.a.tenant)
    url = f"{world.server.url}/api/agent/v1/enroll"
    body = {"pin": pin, "machine_id": "dialled-b", "hostname": "a-pin-on-b-host"}
    headers = host_header(world.server, world.b.tenant.slug)
    response = httpx.post(url, json=body, headers=headers, timeout=10)
    assert response.status_code == 200, _shown(response)
    device_id = response.json()["device_id"]
    assert device_id in device_ids(world.server, world.a.tenant.tenant_id)
    with world.client("admin", world.b.tenant.slug, of=world.b) as b_api:
        assert b_api.get(f"/api/v1/devices/{device_id}").status_code == 404
    assert_b_unchanged(world)
    # the PIN is spent: it does not enroll a second machine anywhere
    again = httpx.post(url, json=body | {"machine_id": "other"}, timeout=10)
    assert again.status_code == 401
