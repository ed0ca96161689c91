"""API tokens (`stw_...`): limited to the permissions they were given, never more than their
user holds, good on their own tenant's host only, revocable, and unable to make tokens."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.permissions.support import SHELL, bearer, sign_in
from tests.support import LiveServer, SeededTenant, Seeder, enroll, tenant_client


@dataclass
class Owner:
    server: LiveServer
    tenant: SeededTenant
    session: str  # the engineer's session token
    device_id: str

    def api(self, token: str | None = None, slug: str | None = "") -> httpx.Client:
        host = self.tenant.slug if slug == "" else slug
        return tenant_client(self.server, host, **bearer(token or self.session))

    def token(self, *permissions: str, name: str = "script") -> dict[str, str]:
        with self.api() as api:
            made = api.post(
                "/api/v1/account/tokens", json={"name": name, "permissions": list(permissions)}
            )
        assert made.status_code == 201, made.text
        return dict(made.json())


@pytest.fixture(scope="module")
def owner(server: LiveServer, seeder: Seeder) -> Owner:
    tenant = seeder.tenant()
    device_id = enroll(server, seeder.pin(tenant), hostname="token-host")["device_id"]
    engineer = seeder.user(tenant, "ENGINEER")
    return Owner(server, tenant, sign_in(server, tenant, engineer), device_id)


def test_a_token_can_do_what_it_was_given_and_nothing_else(owner: Owner) -> None:
    token = owner.token("device.view")
    assert token["token"].startswith("stw_") and token["permissions"] == ["device.view"]
    with owner.api(token["token"]) as script:
        listed = script.get("/api/v1/devices")
        assert listed.status_code == 200 and [d["id"] for d in listed.json()] == [owner.device_id]
        run = script.post(f"/api/v1/devices/{owner.device_id}/commands", json=SHELL)
        assert run.status_code == 403 and run.json()["error"]["code"] == "forbidden", run.text
        account = script.get("/api/v1/account").json()
        assert account["via"] == "token" and account["permissions"] == ["device.view"]
    with owner.api() as api:  # the engineer's session may run it
        assert api.post(f"/api/v1/devices/{owner.device_id}/commands", json=SHELL).is_success


def test_a_token_cannot_get_permissions_its_user_lacks(
    server: LiveServer, seeder: Seeder, owner: Owner
) -> None:
    viewer = seeder.user(owner.tenant, "VIEWER")
    with tenant_client(
        server, owner.tenant.slug, **bearer(sign_in(server, owner.tenant, viewer))
    ) as api:
        asked = api.post(
            "/api/v1/account/tokens",
            json={"name": "too much", "permissions": ["device.view", "command.run"]},
        )
        assert asked.status_code == 422, asked.text
        assert asked.json()["error"]["code"] == "invalid_permissions"
        assert api.get("/api/v1/account/tokens").json() == []


def test_a_revoked_token_stops_working(owner: Owner) -> None:
    token = owner.token("device.view", name="to revoke")
    with owner.api(token["token"]) as script:
        assert script.get("/api/v1/devices").status_code == 200
    with owner.api() as api:
        assert api.delete(f"/api/v1/account/tokens/{token['id']}").status_code == 204
        assert token["id"] not in {t["id"] for t in api.get("/api/v1/account/tokens").json()}
    with owner.api(token["token"]) as script:
        refused = script.get("/api/v1/devices")
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "token_revoked"


def test_a_token_is_refused_on_another_tenants_host(owner: Owner, seeder: Seeder) -> None:
    other = seeder.tenant()
    token = owner.token("device.view", name="elsewhere")
    with owner.api(token["token"], slug=other.slug) as script:
        refused = script.get("/api/v1/devices")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "wrong_tenant"
    assert owner.device_id not in refused.text


def test_last_use_is_recorded(owner: Owner) -> None:
    token = owner.token("device.view", name="used")
    assert token["last_used_at"] is None
    with owner.api(token["token"]) as script:
        assert script.get("/api/v1/devices").status_code == 200
    with owner.api() as api:
        listed = {t["id"]: t for t in api.get("/api/v1/account/tokens").json()}
    assert listed[token["id"]]["last_used_at"] is not None
    assert listed[token["id"]]["last_used_address"] == "127.0.0.1"
    assert "token" not in listed[token["id"]]  # the secret is shown once, at creation


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/account/tokens", {"name": "child", "permissions": ["device.view"]}),
        ("POST", "/api/v1/account/password", {"current_password": "x", "new_password": "y"}),
        ("POST", "/api/v1/account/mfa/setup", {}),
    ],
)
def test_tokens_cannot_manage_the_account(
    owner: Owner, method: str, path: str, body: dict[str, object]
) -> None:
    token = owner.token("device.view", "command.run", name=f"script {path}")
    with owner.api(token["token"]) as script:
        refused = script.request(method, path, json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "session_required"
    with owner.api() as api:
        names = {t["name"] for t in api.get("/api/v1/account/tokens").json()}
    assert "child" not in names
