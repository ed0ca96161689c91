"""`steward tenant disable` against a running server: no logins, no agents, no enrollment;
`enable` lets them back in."""

from __future__ import annotations

import os
import sys

import httpx

from tests.support import LiveServer, Seeder, agent_auth, enroll, login, run, tenant_client

STEWARD = [sys.executable, "-m", "steward.cli"]


def _cli(server: LiveServer, *args: str) -> None:
    env = os.environ | {
        "STEWARD_DATABASE_URL": server.settings.effective_database_url,
        "STEWARD_DATA_DIR": str(server.settings.data_dir),
    }
    result = run([*STEWARD, "tenant", *args], env=env)
    assert result.returncode == 0, result.stderr


def _login_status(server: LiveServer, slug: str, email: str, password: str) -> httpx.Response:
    with tenant_client(server, slug) as http:
        return http.post("/api/v1/auth/login", json={"email": email, "password": password})


def _poll(server: LiveServer, credentials: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/agent/v1/poll",
        json={"messages": []},
        headers=agent_auth(credentials),
        timeout=10,
    )


def test_a_disabled_tenant_is_locked_out(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    bystander = seeder.tenant()
    credentials = enroll(server, seeder.pin(tenant))
    unused_pin = seeder.pin(tenant)
    with login(server, tenant) as api:
        assert api.get("/api/v1/devices").status_code == 200
        assert _poll(server, credentials).status_code == 200

        _cli(server, "disable", tenant.slug)

        refused = _login_status(server, tenant.slug, tenant.admin_email, tenant.password)
        assert refused.status_code == 401
        assert api.get("/api/v1/devices").status_code == 401  # tokens issued before are void
    polled = _poll(server, credentials)
    assert polled.status_code == 401
    assert polled.json()["error"]["code"] == "tenant_disabled"
    enrolled = httpx.post(
        f"{server.url}/api/agent/v1/enroll",
        json={"pin": unused_pin, "machine_id": "m-disabled", "hostname": "h"},
        timeout=10,
    )
    assert enrolled.status_code == 401
    assert enrolled.json()["error"]["code"] == "tenant_disabled"
    with login(server, bystander) as other:
        assert other.get("/api/v1/devices").status_code == 200

    _cli(server, "enable", tenant.slug)

    with login(server, tenant) as api:
        assert api.get("/api/v1/devices").status_code == 200
    assert _poll(server, credentials).status_code == 200
    assert enroll(server, unused_pin)["tenant"] == tenant.slug  # refused PIN was not spent
