"""Signing in and out, the session cookie, and CSRF protection of the console's forms."""

from __future__ import annotations

import httpx

from steward.server.web.security import CSRF_COOKIE, SESSION_COOKIE
from tests.web.support import World, csrf_token, htmx, login


async def test_root_goes_to_the_devices(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/devices"


async def test_pages_redirect_to_login_when_signed_out(client: httpx.AsyncClient) -> None:
    response = await client.get("/devices?q=lab")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fdevices%3Fq%3Dlab"


async def test_htmx_requests_are_sent_to_login_with_a_header(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/devices/table", headers={"HX-Request": "true", "HX-Current-URL": "http://x/devices"}
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


async def test_login_page_names_the_hosts_tenant_and_sets_a_csrf_cookie(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/login")
    assert response.status_code == 200
    assert 'id="tenant-name">Acme' in response.text and 'name="tenant"' not in response.text
    assert client.cookies[CSRF_COOKIE] == csrf_token(response.text)
    cookie = response.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


async def test_login_sets_the_session_cookie_and_goes_home(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await login(client, "admin@acme.test")
    assert response.status_code == 303
    assert response.headers["location"] == "/devices"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    ).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "max-age=43200" in cookie
    assert "secure" not in cookie  # plain http here; https requests get Secure

    page = await client.get("/devices")
    assert page.status_code == 200
    assert "admin@acme.test" in page.text and "Acme" in page.text


async def test_login_cookie_is_secure_over_https(app: object, world: World) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://acme.localhost") as http:
        response = await login(http, "admin@acme.test")
    cookie = next(c for c in response.headers.get_list("set-cookie") if SESSION_COOKIE in c)
    assert "secure" in cookie.lower()


async def test_login_returns_to_the_page_asked_for(client: httpx.AsyncClient, world: World) -> None:
    form = await client.get("/login?next=/devices/enroll")
    response = await client.post(
        "/login",
        data={
            "email": "admin@acme.test",
            "password": "correct horse battery",
            "next": "/devices/enroll",
            "csrf_token": csrf_token(form.text),
        },
    )
    assert response.headers["location"] == "/devices/enroll"


async def test_login_never_returns_to_another_site(client: httpx.AsyncClient, world: World) -> None:
    form = await client.get("/login")
    for target in ("https://evil.test/", "//evil.test/x", "/\\evil.test"):
        response = await client.post(
            "/login",
            data={
                "email": "admin@acme.test",
                "password": "correct horse battery",
                "next": target,
                "csrf_token": csrf_token(form.text),
            },
        )
        assert response.headers["location"] == "/devices"


async def test_failed_login_is_generic_and_401(client: httpx.AsyncClient, world: World) -> None:
    for email, password in (
        ("admin@acme.test", "wrong password!"),
        ("nobody@acme.test", "correct horse battery"),
        ("admin@other.test", "correct horse battery"),  # a user of another tenant
        ("", ""),
    ):
        response = await login(client, email, password=password)
        assert response.status_code == 401
        assert "Wrong e-mail or password." in response.text
        assert SESSION_COOKIE not in client.cookies


async def test_logout_clears_the_session(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/devices")
    response = await admin.post("/logout", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert SESSION_COOKIE not in admin.cookies
    assert (await admin.get("/devices")).status_code == 303


async def test_a_tampered_session_cookie_is_sent_to_login(
    client: httpx.AsyncClient, world: World
) -> None:
    client.cookies.set(SESSION_COOKIE, "not-a-token")
    response = await client.get("/devices")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_forms_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    await client.get("/login")  # has the cookie, but posts no token
    response = await client.post(
        "/login",
        data={"email": "admin@acme.test", "password": "correct horse battery"},
    )
    assert response.status_code == 403
    assert "Request refused" in response.text
    assert SESSION_COOKIE not in client.cookies


async def test_a_token_that_does_not_match_the_cookie_is_refused(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/logout", data={"csrf_token": "x" * 43})
    assert response.status_code == 403
    assert (await admin.get("/devices")).status_code == 200  # still signed in


async def test_a_cross_site_form_without_the_cookie_is_refused(
    admin: httpx.AsyncClient, world: World
) -> None:
    page = await admin.get(f"/devices/{world.device_id}")
    token = csrf_token(page.text)
    admin.cookies.delete(CSRF_COOKIE)  # SameSite=Strict: a cross-site post carries no cookie
    response = await admin.post(
        f"/devices/{world.device_id}/commands", headers=htmx(token), data={"command": "id"}
    )
    assert response.status_code == 403
    assert "Request refused" in response.text
