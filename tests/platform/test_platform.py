"""Platform administrators: created by the CLI, signed in on the bare base domain only, listing
tenants with device and online counts, creating, disabling and enabling them (API and console)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.support import LiveServer, Seeder, enroll, login, run, tenant_client

STEWARD = [sys.executable, "-m", "steward.cli"]
PASSWORD = "platform-password-1"


@pytest.fixture(scope="module")
def platform_admin(server: LiveServer) -> str:
    email = f"root-{uuid.uuid4().hex[:6]}@platform.example"
    env = os.environ | {
        "STEWARD_DATABASE_URL": server.settings.effective_database_url,
        "STEWARD_DATA_DIR": str(server.settings.data_dir),
    }
    made = run([*STEWARD, "platform-admin", "create", email, "--password-stdin"], env=env,
               input=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert f"platform administrator {email} created" in made.stdout
    again = run(
        [*STEWARD, "platform-admin", "create", email], env=env | {"STEWARD_PASSWORD": PASSWORD}
    )
    assert again.returncode != 0 and "user_exists" in again.stderr
    return email


def _platform_api(server: LiveServer, email: str) -> httpx.Client:
    with tenant_client(server, None) as http:
        response = http.post("/api/v1/platform/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    return tenant_client(server, None, Authorization=f"Bearer {token}")


def test_platform_login_only_on_the_platform_host(
    server: LiveServer, seeder: Seeder, platform_admin: str
) -> None:
    body = {"email": platform_admin, "password": PASSWORD}
    with tenant_client(server, seeder.tenant().slug) as http:
        assert http.post("/api/v1/platform/login", json=body).status_code == 404
    with tenant_client(server, None) as http:
        wrong = http.post("/api/v1/platform/login", json=body | {"password": "wrong-password"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
        # tenant users are not platform administrators
        assert http.post("/api/v1/auth/login", json=body).status_code == 404


def test_tenants_are_listed_with_device_and_online_counts(
    server: LiveServer, seeder: Seeder, platform_admin: str
) -> None:
    tenant = seeder.tenant()
    for _ in range(2):
        enroll(server, seeder.pin(tenant))
    with _platform_api(server, platform_admin) as api:
        listed = {t["slug"]: t for t in api.get("/api/v1/platform/tenants").json()}
    assert listed[tenant.slug]["devices"] == 2 and listed[tenant.slug]["online"] == 0
    assert listed[tenant.slug]["status"] == "active"


def test_create_disable_and_enable_a_tenant(
    server: LiveServer, seeder: Seeder, platform_admin: str
) -> None:
    slug = f"p{uuid.uuid4().hex[:8]}"
    body = {
        "slug": slug,
        "name": "Pharmacy 7",
        "admin_email": f"owner@{slug}.example",
        "admin_password": "pharmacy-lantern-7",
        "timezone": "Asia/Seoul",
        "locale": "ko",
    }
    with _platform_api(server, platform_admin) as api:
        created = api.post("/api/v1/platform/tenants", json=body)
        assert created.status_code == 201, created.text
        assert api.post("/api/v1/platform/tenants", json=body).status_code == 409
        for bad in ({"slug": "Bad Slug!"}, {"admin_password": "short"}, {"timezone": "Mars/Base"}):
            refused = api.post(
                "/api/v1/platform/tenants",
                json=body | bad | {"slug": bad.get("slug", f"q{uuid.uuid4().hex[:8]}")},
            )
            assert refused.status_code == 422, bad
        with tenant_client(server, slug) as http:
            owner = {"email": body["admin_email"], "password": body["admin_password"]}
            assert http.post("/api/v1/auth/login", json=owner).status_code == 200

            disabled = api.patch(f"/api/v1/platform/tenants/{slug}", json={"status": "disabled"})
            assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
            assert http.post("/api/v1/auth/login", json=owner).status_code == 401
            bad = api.patch(f"/api/v1/platform/tenants/{slug}", json={"status": "gone"})
            assert bad.status_code == 422
            missing = api.patch("/api/v1/platform/tenants/no-such", json={"status": "active"})
            assert missing.status_code == 404

            assert (
                api.patch(f"/api/v1/platform/tenants/{slug}", json={"status": "active"}).status_code
                == 200
            )
            assert http.post("/api/v1/auth/login", json=owner).status_code == 200


def test_tenant_tokens_are_not_platform_tokens_and_back(
    server: LiveServer, seeder: Seeder, platform_admin: str
) -> None:
    tenant = seeder.tenant()
    with login(server, tenant) as api:
        tenant_token = api.headers["Authorization"]
    with tenant_client(server, None, Authorization=tenant_token) as http:
        response = http.get("/api/v1/platform/tenants")
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_token"
    with _platform_api(server, platform_admin) as platform:
        platform_token = platform.headers["Authorization"]
    with tenant_client(server, tenant.slug, Authorization=platform_token) as http:
        assert http.get("/api/v1/devices").status_code == 401
        assert http.get("/api/v1/platform/tenants").status_code == 404  # not on a tenant host
    with tenant_client(server, None) as http:
        assert http.get("/api/v1/platform/tenants").status_code == 401


def _console(server: LiveServer) -> httpx.Client:
    return tenant_client(server, None, **{"Accept-Language": "en"})


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_platform_console(server: LiveServer, seeder: Seeder, platform_admin: str) -> None:
    tenant = seeder.tenant()
    enroll(server, seeder.pin(tenant))
    with _console(server) as http:
        assert http.get("/platform").headers["location"] == "/platform/login"
        form = http.get("/platform/login")
        token = _csrf(form.text)
        wrong = http.post(
            "/platform/login",
            data={"email": platform_admin, "password": "nope-nope-nope", "csrf_token": token},
        )
        assert wrong.status_code == 401 and "Wrong e-mail or password." in wrong.text
        signed_in = http.post(
            "/platform/login",
            data={"email": platform_admin, "password": PASSWORD, "csrf_token": token},
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/platform"
        page = http.get("/platform")
        assert page.status_code == 200
        row = re.search(rf'<tr data-tenant="{tenant.slug}">(.*?)</tr>', page.text, re.S)
        assert row and '<td class="text-end" data-devices>1</td>' in row.group(1)

        slug = f"w{uuid.uuid4().hex[:8]}"
        made = http.post("/platform/tenants", data={
            "slug": slug, "name": "<b>Lab</b>", "admin_email": f"a@{slug}.example",
            "admin_password": "lab-password-12", "locale": "ko", "timezone": "Asia/Seoul",
            "csrf_token": token,
        })  # fmt: skip
        assert made.status_code == 303, made.text
        listed = http.get("/platform?done=created").text
        assert "The organisation was created." in listed and "&lt;b&gt;Lab&lt;/b&gt;" in listed
        duplicate = http.post("/platform/tenants", data={
            "slug": slug, "name": "x", "admin_email": f"a@{slug}.example",
            "admin_password": "lab-password-12", "csrf_token": token,
        })  # fmt: skip
        assert duplicate.status_code == 409 and "already exists" in duplicate.text
        no_csrf = http.post(f"/platform/tenants/{slug}/status", data={"status": "disabled"})
        assert no_csrf.status_code == 403
        disabled = http.post(
            f"/platform/tenants/{slug}/status", data={"status": "disabled", "csrf_token": token}
        )
        assert disabled.headers["location"] == "/platform?done=disabled"
        korean = http.get("/platform?lang=ko").text
        assert "조직" in korean and "비활성" in korean
    # the page is not served on a tenant's host
    with tenant_client(server, tenant.slug) as http:
        assert http.get("/platform/login").status_code == 404


def test_the_platform_host_sends_tenant_users_to_their_host(server: LiveServer) -> None:
    with _console(server) as http:
        form = http.get("/login")
        assert 'name="tenant"' in form.text and "/platform/login" in form.text
        policy = form.headers["Content-Security-Policy"]
        assert "form-action 'self' *.localhost:*" in policy
        sent = http.post("/login", data={"tenant": "Acme", "csrf_token": _csrf(form.text)})
        assert sent.status_code == 303
        assert sent.headers["location"] == f"http://acme.localhost:{server.port}/login"
        bad = http.post("/login", data={"tenant": "../x", "csrf_token": _csrf(form.text)})
        assert bad.status_code == 422
        assert http.get("/").headers["location"] == "/platform"


def test_cli_refuses_a_platform_admin_without_a_password(server: LiveServer) -> None:
    env = os.environ | {"STEWARD_DATABASE_URL": server.settings.effective_database_url}
    env.pop("STEWARD_PASSWORD", None)
    result = subprocess.run([*STEWARD, "platform-admin", "create", "x@y.example"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 2 and "STEWARD_PASSWORD" in result.stderr
