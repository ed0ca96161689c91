"""The operator API against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import httpx

from tests.support import LiveServer, Seeder, enroll, host_header, login, tenant_client


def _error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"]
    return str(body["error"]["code"])


def test_healthz_reports_database_ok(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"], body["bus"]) == ("ok", "ok", "memory")
    assert body["leader"] is True  # one server: it runs the periodic work


def test_openapi_is_published(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/api/openapi.json", headers=host_header(server, None)).json()
    assert "/api/v1/devices" in spec["paths"]
    assert "/api/v1/devices/{device_id}/commands" in spec["paths"]


def test_login_issues_a_bearer_token(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with tenant_client(server, tenant.slug) as http:
        response = http.post(
            "/api/v1/auth/login",
            json={"email": tenant.admin_email, "password": tenant.password},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["access_token"].count(".") == 2


def test_login_failures_look_the_same(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    other = seeder.tenant()
    attempts = [
        {"email": tenant.admin_email, "password": "wrong-password"},
        {"email": "nobody@example.com", "password": tenant.password},
        # a tenant named in the body is never trusted over the host's
        {"tenant": other.slug, "email": other.admin_email, "password": other.password},
        {"email": other.admin_email, "password": other.password},  # another tenant's user
    ]
    with tenant_client(server, tenant.slug) as http:
        for body in attempts:
            response = http.post("/api/v1/auth/login", json=body)
            assert response.status_code == 401
            assert _error(response) == "invalid_credentials"


def test_login_validates_input(server: LiveServer, seeder: Seeder) -> None:
    with tenant_client(server, seeder.tenant().slug) as http:
        response = http.post("/api/v1/auth/login", json={"tenant": "x"})
        assert response.status_code == 422
        assert _error(response) == "invalid_input"
        response = http.post(
            "/api/v1/auth/login",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422


def test_api_requires_a_valid_token(server: LiveServer, seeder: Seeder) -> None:
    with tenant_client(server, seeder.tenant().slug) as http:
        assert _error(http.get("/api/v1/devices")) == "unauthorized"
        response = http.get("/api/v1/devices", headers={"Authorization": "Bearer not.a.token"})
        assert response.status_code == 401 and _error(response) == "invalid_token"


def test_unknown_route_is_a_json_404(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/api/v1/nope", headers=host_header(server, None))
    assert response.status_code == 404 and _error(response) == "not_found"


def test_body_over_one_mebibyte_is_refused(server: LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/api/agent/v1/enroll",
        content=b"x" * (1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and _error(response) == "payload_too_large"


def test_device_list_and_detail(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    creds = enroll(server, seeder.pin(tenant, group="lab-1"), hostname="pc-01")
    with login(server, tenant) as api:
        response = api.get("/api/v1/devices")
        assert response.status_code == 200
        assert response.headers["x-total-count"] == "1"
        (device,) = response.json()
        assert device["id"] == creds["device_id"]
        assert device["hostname"] == "pc-01" and device["group"] == "lab-1"
        assert device["online"] is False and device["last_seen"] is None
        for key in ("os", "cpu_percent", "memory_percent", "ip_addresses"):
            assert key in device
        detail = api.get(f"/api/v1/devices/{creds['device_id']}").json()
        assert detail["machine_id"] and detail["os_name"] == "Linux"
        assert api.get("/api/v1/devices", params={"q": "nomatch"}).json() == []
        assert api.get("/api/v1/devices", params={"online": "true"}).json() == []
        assert api.get("/api/v1/devices/counts").json() == {"total": 1, "online": 0, "offline": 1}


def test_device_list_paginates(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    for index in range(5):
        enroll(server, seeder.pin(tenant), hostname=f"pc-{index:02d}")
    with login(server, tenant) as api:
        page = api.get("/api/v1/devices", params={"limit": 2, "offset": 2})
        assert [d["hostname"] for d in page.json()] == ["pc-02", "pc-03"]
        assert page.headers["x-total-count"] == "5"
        assert api.get("/api/v1/devices", params={"limit": 0}).status_code == 422


def test_another_tenants_device_is_not_found(server: LiveServer, seeder: Seeder) -> None:
    mine, theirs = seeder.tenant(), seeder.tenant()
    their_device = enroll(server, seeder.pin(theirs))["device_id"]
    with login(server, mine) as api:
        assert api.get("/api/v1/devices").json() == []
        response = api.get(f"/api/v1/devices/{their_device}")
        assert response.status_code == 404 and _error(response) == "device_not_found"
        assert api.get(f"/api/v1/devices/{their_device}/metrics").status_code == 404
        response = api.post(
            f"/api/v1/devices/{their_device}/commands",
            json={"type": "shell", "payload": {"command": "id"}},
        )
        assert response.status_code == 404
    with login(server, theirs) as api:
        command_id = api.post(
            f"/api/v1/devices/{their_device}/commands",
            json={"type": "shell", "payload": {"command": "id"}},
        ).json()["id"]
    with login(server, mine) as api:
        assert api.get(f"/api/v1/commands/{command_id}").status_code == 404


def test_viewer_may_look_but_not_run_commands(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    device_id = enroll(server, seeder.pin(tenant))["device_id"]
    viewer = seeder.user(tenant, "VIEWER")
    with login(server, tenant, viewer) as api:
        assert api.get("/api/v1/devices").status_code == 200
        response = api.post(
            f"/api/v1/devices/{device_id}/commands",
            json={"type": "shell", "payload": {"command": "id"}},
        )
        assert response.status_code == 403 and _error(response) == "forbidden"
        assert api.post("/api/v1/enrollment/pins", json={}).status_code == 403


def test_command_is_queued_and_validated(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    device_id = enroll(server, seeder.pin(tenant))["device_id"]
    with login(server, tenant) as api:
        response = api.post(
            f"/api/v1/devices/{device_id}/commands",
            json={"type": "shell", "payload": {"command": "echo hi"}},
        )
        assert response.status_code == 201
        created = response.json()
        assert created["status"] == "queued"
        command = api.get(f"/api/v1/commands/{created['id']}").json()
        assert command["status"] == "queued" and command["payload"] == {"command": "echo hi"}
        assert command["created_by"] == tenant.admin_email
        bad_bodies = [
            {"type": "rm-rf", "payload": {"command": "x"}},
            {"type": "shell", "payload": {}},
            {"type": "shell", "payload": {"command": ""}},
            {"type": "shell", "payload": {"command": 5}},
            {"type": "shell", "payload": {"command": "x", "interpreter": "python"}},
            {"type": "shell", "payload": {"command": "x"}, "timeout_s": -1},
            ["not", "an", "object"],
        ]
        for body in bad_bodies:
            response = api.post(f"/api/v1/devices/{device_id}/commands", json=body)
            assert response.status_code == 422, body
            assert _error(response) == "invalid_input"
        missing = uuid.uuid4()
        response = api.post(
            f"/api/v1/devices/{missing}/commands",
            json={"type": "shell", "payload": {"command": "x"}},
        )
        assert response.status_code == 404
        assert api.get("/api/v1/devices/not-a-uuid").status_code == 422


def test_pins_from_the_api(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with login(server, tenant) as api:
        response = api.post("/api/v1/enrollment/pins", json={"ttl_s": 300})
        assert response.status_code == 201
        pin = response.json()["pin"]
        assert len(pin) == 6 and pin.isdigit()
        assert api.post("/api/v1/enrollment/pins", json={"group": "missing"}).status_code == 404
    assert enroll(server, pin)["tenant"] == tenant.slug


def test_repeated_failed_logins_are_throttled(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with tenant_client(server, tenant.slug) as http:
        url = "/api/v1/auth/login"
        wrong = {"email": tenant.admin_email, "password": "wrong-password"}
        statuses = [http.post(url, json=wrong).status_code for _ in range(6)]
        # five wrong passwords lock the account (accounts/lockout.py: ACCOUNT.threshold)
        assert statuses[:5] == [401] * 5 and statuses[5] == 429
        # the right password does not get through either while the account is throttled
        right = wrong | {"password": tenant.password}
        response = http.post(url, json=right)
        assert response.status_code == 429 and _error(response) == "rate_limited"
        assert int(response.headers["retry-after"]) > 0
