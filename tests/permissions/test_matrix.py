"""The role matrix, route by route: generated from the app and `ROLE_PERMISSIONS`.

Every route that requires a permission is called by a user of each of the six roles (of one
tenant, on objects of that tenant): a role without the permission gets 403 `forbidden`, a role
with it gets through. A new route needs either a `require(...)` the walk finds or an entry in
`NO_PERMISSION` saying why it has none, else `test_every_route_is_accounted_for` fails.
"""

from __future__ import annotations

import httpx
import pytest

from steward.server.accounts.models import Role
from steward.server.accounts.permissions import ROLE_PERMISSIONS
from tests.permissions.routes import (
    NO_PERMISSION,
    REFUSED_BEYOND_PERMISSION,
    SELF_READS,
    Route,
    all_route_keys,
    guarded_routes,
    request_for,
    routes_of,
)
from tests.permissions.support import ROLES, Team, build_team
from tests.support import LiveServer, Seeder

GUARDED = guarded_routes()


@pytest.fixture(scope="module")
def team(server: LiveServer, seeder: Seeder) -> Team:
    return build_team(server, seeder)


def _shown(response: httpx.Response) -> str:
    return f"{response.status_code}: {response.text[:300]}"


def call(team: Team, route: Route, role: Role) -> httpx.Response:
    path, request = request_for(route)
    values = team.values | {name: team.fresh(name) for name in request.fresh}
    try:
        url = path.format_map(values) + request.query
    except KeyError as missing:
        pytest.fail(f"{route.id}: no value for {missing}: add a request to REQUESTS in routes.py")
    body = {k: v.format_map(values) if isinstance(v, str) else v for k, v in request.body.items()}
    with team.client(role, console=route.console) as http:
        if route.method == "GET":
            return http.get(url)
        if route.console:
            return http.request(route.method, url, data=body)
        return http.request(route.method, url, json=body)


# ---- the table against the app ---------------------------------------------------------------


def test_every_route_is_accounted_for(server: LiveServer) -> None:
    guarded = {route.key for route in routes_of(server.app) if route.permissions}
    known = guarded | NO_PERMISSION.keys()
    missing = sorted(all_route_keys(server.app) - known)
    assert not missing, f"routes with no permission found and no reason in NO_PERMISSION: {missing}"
    stale = sorted(NO_PERMISSION.keys() - all_route_keys(server.app))
    assert not stale, f"NO_PERMISSION names routes the app no longer has: {stale}"
    both = sorted(guarded & NO_PERMISSION.keys())
    assert not both, f"routes that require a permission after all: remove them: {both}"


def test_the_generated_routes_are_the_served_ones(server: LiveServer) -> None:
    assert {r.key: r.permissions for r in GUARDED} == {
        r.key: r.permissions for r in routes_of(server.app) if r.permissions
    }
    assert len(GUARDED) >= 30  # the walk found the permission checks


# ---- each role on each guarded route ---------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "role"),
    [
        pytest.param(route, role, id=f"{role.value}:{route.id}")
        for route in GUARDED
        for role in ROLES
    ],
)
def test_role_matrix(team: Team, route: Route, role: Role) -> None:
    response = call(team, route, role)
    by_role = route.permissions <= ROLE_PERMISSIONS[role]
    allowed = by_role and (route.key, role.value) not in REFUSED_BEYOND_PERMISSION
    needs = ", ".join(sorted(route.permissions))
    if not allowed:
        assert response.status_code == 403, f"{role} lacks {needs}: {_shown(response)}"
        if "application/json" in response.headers.get("content-type", ""):
            # refused for the role: `forbidden`; by the handler, its own code
            expected = "forbidden" if not by_role else response.json()["error"]["code"]
            assert response.json()["error"]["code"] == expected, _shown(response)
        else:
            assert route.console and "text/html" in response.headers["content-type"]
        return
    assert response.status_code not in (401, 403, 404), f"{role} has {needs}: {_shown(response)}"
    assert response.status_code < 500, _shown(response)


# ---- routes without a permission -------------------------------------------------------------


@pytest.mark.parametrize("path", SELF_READS)
@pytest.mark.parametrize("role", ROLES, ids=str)
def test_every_role_reads_its_own_account(team: Team, role: Role, path: str) -> None:
    with team.client(role) as http:
        response = http.get(path)
    assert response.status_code == 200, _shown(response)
    if path == "/api/v1/account":
        assert response.json()["role"] == role.value
        assert set(response.json()["permissions"]) == set(ROLE_PERMISSIONS[role])


def test_every_exemption_says_why() -> None:
    for key, reason in NO_PERMISSION.items():
        assert reason.strip(), f"{key} has no reason"
