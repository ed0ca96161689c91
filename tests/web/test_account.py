"""The account page: profile, password, two-factor set-up and sign-in with it, step-up,
sessions and API tokens."""

from __future__ import annotations

import re
import time

import httpx
import pyotp
import pytest
from sqlalchemy import select, update

from steward.server.accounts.models import User
from steward.server.audit.models import AuditEvent
from steward.server.runtime import Runtime
from steward.server.tenancy.models import Tenant
from steward.server.web.security import SESSION_COOKIE
from tests.web.support import PASSWORD, World, csrf_token, login

_SECRET = re.compile(r"data-secret>([A-Z2-7]+)<")
# The services `_user_for_code` (login with a code, step-up) call the lockout's own session
# while the request's transaction holds SQLite's only pooled connection: they wait 30 s, fail.
_CODES = re.compile(r'<li class="col user-select-all">([a-z0-9-]+)</li>')


async def _post(http: httpx.AsyncClient, url: str, form_page: str = "/account", **data: object):
    page = await http.get(form_page)
    return await http.post(url, data={**data, "csrf_token": csrf_token(page.text)})


async def _actions(runtime: Runtime, action: str) -> list[AuditEvent]:
    async with runtime.system_sessions() as session:
        found = await session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return list(found)


async def _set_up_mfa(http: httpx.AsyncClient) -> tuple[str, list[str]]:
    page = await http.get("/account/mfa")
    assert page.status_code == 200 and "<svg" in page.text
    match = _SECRET.search(page.text)
    assert match
    secret = match.group(1)
    done = await http.post(
        "/account/mfa",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(page.text)},
    )
    assert done.status_code == 200, done.text
    codes = _CODES.findall(done.text)
    assert len(codes) == 10
    assert done.cookies.get(SESSION_COOKIE)  # the rotated session
    return secret, codes


async def test_account_page_shows_profile_sessions_and_tokens(admin: httpx.AsyncClient) -> None:
    page = await admin.get("/account")
    assert page.status_code == 200
    assert "admin@acme.test" in page.text and "user.manage" in page.text
    assert "data-current" in page.text and 'data-mfa-status="off"' in page.text
    korean = await admin.get("/account?lang=ko")
    assert "2단계 인증" in korean.text and "세션" in korean.text and "API 토큰" in korean.text


async def test_password_change(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    wrong = await _post(
        admin, "/account/password", current_password="nope", new_password="a-new-long-phrase"
    )
    assert wrong.status_code == 422 and "The current password is wrong." in wrong.text
    weak = await _post(admin, "/account/password", current_password=PASSWORD, new_password="short")
    assert weak.status_code == 422 and "at least 10 characters" in weak.text
    done = await _post(
        admin,
        "/account/password",
        current_password=PASSWORD,
        new_password="a-new-long-phrase",
    )
    assert done.status_code == 303 and done.headers["location"] == "/account?done=password"
    assert (await admin.get("/account")).status_code == 200  # this session stays
    results = [e.result for e in await _actions(runtime, "password.change")]
    assert sorted(results) == ["failure", "success"]


def _next_code(secret: str) -> str:
    """The code of the next time step (the current one was spent by the set-up)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def test_mfa_set_up_then_sign_in_with_a_code(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    wrong = await _post(admin, "/account/mfa", "/account/mfa", code="000000")
    assert wrong.status_code == 422 and "That code is not valid" in wrong.text
    secret, codes = await _set_up_mfa(admin)
    assert 'data-mfa-status="on"' in (await admin.get("/account")).text
    assert [e.result for e in await _actions(runtime, "mfa.enable")] == ["failure", "success"]

    await admin.post("/logout", data={"csrf_token": admin.cookies.get("steward_csrf", "")})
    admin.cookies.delete(SESSION_COOKIE)
    first = await login(admin, "admin@acme.test")
    assert first.status_code == 303 and first.headers["location"] == "/login/mfa"
    form = await admin.get("/login/mfa")
    bad = await admin.post(
        "/login/mfa", data={"code": "123456", "csrf_token": csrf_token(form.text)}
    )
    assert bad.status_code == 401
    recovered = await admin.post(
        "/login/mfa", data={"code": codes[0], "csrf_token": csrf_token(form.text)}
    )
    assert recovered.status_code == 303 and recovered.headers["location"] == "/devices"
    assert (await admin.get("/devices")).status_code == 200

    admin.cookies.delete(SESSION_COOKIE)
    await login(admin, "admin@acme.test")
    again = await admin.post(
        "/login/mfa", data={"code": codes[0], "csrf_token": csrf_token(form.text)}
    )
    assert again.status_code == 401  # a recovery code works once
    with_app = await admin.post(
        "/login/mfa", data={"code": _next_code(secret), "csrf_token": csrf_token(form.text)}
    )
    assert with_app.status_code == 303


async def test_recovery_codes_and_disable(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    _, codes = await _set_up_mfa(admin)
    bad = await _post(admin, "/account/second-factor/recovery-codes", code="nope-nope")
    assert bad.status_code == 422
    fresh = await _post(admin, "/account/second-factor/recovery-codes", code=codes[0])
    assert fresh.status_code == 200 and len(_CODES.findall(fresh.text)) == 10
    old = await _post(admin, "/account/second-factor/disable", code=codes[1])
    assert old.status_code == 422  # the old codes stopped working
    new_code = _CODES.findall(fresh.text)[0]
    off = await _post(admin, "/account/second-factor/disable", code=new_code)
    assert off.status_code == 303 and off.headers["location"] == "/account?done=mfa_disabled"
    actions = {e.action for e in await _actions(runtime, "mfa.disable")}
    assert actions == {"mfa.disable"}
    assert len(await _actions(runtime, "mfa.recovery_codes")) == 2


async def test_disable_refused_where_required(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    _, codes = await _set_up_mfa(admin)
    async with runtime.system_sessions() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.slug == "acme")
            .values(settings={"security": {"mfa_required": "all"}})
        )
        await session.commit()
    refused = await _post(admin, "/account/second-factor/disable", code=codes[0])
    assert refused.status_code == 422 and "cannot be turned off" in refused.text


async def test_setup_only_session_goes_to_mfa_then_on(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    async with runtime.system_sessions() as session:
        await session.execute(
            update(Tenant)
            .where(Tenant.slug == "acme")
            .values(settings={"security": {"mfa_required": "all"}})
        )
        await session.commit()
    signed_in = await login(client, "viewer@acme.test")
    assert signed_in.headers["location"].startswith("/account/mfa")
    blocked = await client.get("/devices")
    assert blocked.status_code == 303
    assert blocked.headers["location"].startswith("/account/mfa")
    assert (await client.get("/account")).headers["location"] == "/account/mfa?next=%2Faccount"
    page = await client.get("/account/mfa?next=/groups")
    secret = _SECRET.search(page.text).group(1)  # type: ignore[union-attr]
    done = await client.post(
        "/account/mfa",
        data={
            "code": pyotp.TOTP(secret).now(),
            "next": "/groups",
            "csrf_token": csrf_token(page.text),
        },
    )
    assert done.status_code == 200 and 'href="/groups"' in done.text
    assert (await client.get("/groups")).status_code == 200


async def test_step_up(admin: httpx.AsyncClient, world: World, runtime: Runtime) -> None:
    no_mfa = await admin.get("/step-up?next=/groups")
    assert no_mfa.status_code == 200 and "/account/mfa?next=" in no_mfa.text
    secret, _ = await _set_up_mfa(admin)
    form = await admin.get("/step-up?next=https://evil.example/")
    assert 'name="next" value="/devices"' in form.text
    bad = await admin.post(
        "/step-up", data={"code": "000000", "next": "/groups", "csrf_token": csrf_token(form.text)}
    )
    assert bad.status_code == 422
    code = _next_code(secret)
    ok = await admin.post(
        "/step-up", data={"code": code, "next": "/groups", "csrf_token": csrf_token(form.text)}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/groups"
    assert ok.cookies.get(SESSION_COOKIE)
    assert (await admin.get("/groups")).status_code == 200
    assert len(await _actions(runtime, "mfa.step_up")) == 1


async def test_revoking_a_session_signs_that_browser_out(
    app: object, admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as other:
        await login(other, "admin@acme.test")
        assert (await other.get("/devices")).status_code == 200
        page = await admin.get("/account")
        ids = re.findall(r'data-session="([0-9a-f-]+)"', page.text)
        current = re.search(r'data-session="([0-9a-f-]+)">\s*<td>[^\n]*data-current', page.text)
        assert len(ids) == 2 and current
        target = next(i for i in ids if i != current.group(1))
        done = await _post(admin, f"/account/sessions/{target}/revoke")
        assert done.status_code == 303
        gone = await other.get("/devices")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")

        await login(other, "admin@acme.test")
        everywhere = await _post(admin, "/account/sessions/revoke-all")
        assert everywhere.status_code == 303 and everywhere.headers["location"] == "/login"
        assert (await admin.get("/devices")).status_code == 303
        assert (await other.get("/devices")).status_code == 303
    assert len(await _actions(runtime, "session.revoke_all")) == 1
    assert len(await _actions(runtime, "session.revoke")) == 1


async def test_api_tokens(
    admin: httpx.AsyncClient, viewer: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    no_name = await _post(admin, "/account/tokens", name=" ", permissions="device.view")
    assert no_name.status_code == 422 and "Give the token a name" in no_name.text
    none = await _post(admin, "/account/tokens", name="ci")
    assert none.status_code == 422 and "at least one" in none.text
    days = await _post(
        admin, "/account/tokens", name="ci", permissions="device.view", expires_in_days="999"
    )
    assert days.status_code == 422 and "1 to 366 days" in days.text
    made = await _post(
        admin,
        "/account/tokens",
        name="ci",
        permissions=["device.view", "audit.view"],
        expires_in_days="30",
    )
    assert made.status_code == 201
    secret = re.search(r'id="new-token">(stw_[^<]+)<', made.text).group(1)  # type: ignore[union-attr]
    api = await admin.get("/api/v1/devices", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 200
    token_id = re.search(r'data-token="([0-9a-f-]+)"', made.text).group(1)  # type: ignore[union-attr]
    assert secret not in (await admin.get("/account")).text  # shown once
    revoked = await _post(admin, f"/account/tokens/{token_id}/revoke")
    assert revoked.status_code == 303
    api = await admin.get("/api/v1/devices", headers={"Authorization": f"Bearer {secret}"})
    assert api.status_code == 401
    assert [e.action for e in await _actions(runtime, "token.create")] == ["token.create"]
    assert len(await _actions(runtime, "token.revoke")) == 1


async def test_viewer_cannot_give_a_token_more_than_they_have(viewer: httpx.AsyncClient) -> None:
    page = await viewer.get("/account")
    assert 'value="user.manage"' not in page.text
    refused = await _post(viewer, "/account/tokens", name="x", permissions="user.manage")
    assert refused.status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "/account/password",
        "/account/mfa",
        "/account/second-factor/disable",
        "/account/second-factor/recovery-codes",
        "/account/sessions/revoke-all",
        "/account/tokens",
        "/step-up",
    ],
)
async def test_csrf_is_required(admin: httpx.AsyncClient, url: str) -> None:
    response = await admin.post(url, data={"code": "123456", "name": "x"})
    assert response.status_code == 403 and "Request refused" in response.text


async def test_signed_out_goes_to_login(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get("/account")
    assert response.status_code == 303 or response.status_code == 401
    assert "/login" in response.headers["location"]


async def test_users_see_only_their_own_user(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    async with runtime.system_sessions() as session:
        users = list(await session.scalars(select(User.email)))
    assert "admin@other.test" in users
    assert "admin@other.test" not in (await admin.get("/account")).text
