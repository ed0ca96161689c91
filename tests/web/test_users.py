"""The users pages: list, create, edit role and scope, reset MFA, sign out everywhere."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from steward.server.accounts.models import User
from steward.server.audit.models import AuditEvent
from steward.server.runtime import Runtime
from steward.server.tenancy.models import Group
from tests.web.support import World, csrf_token, login

NEW = {
    "email": "Kim@Acme.test",
    "full_name": "Kim Minji",
    "role": "ENGINEER",
    "password": "a-long-first-phrase",
}


async def _post(http: httpx.AsyncClient, url: str, form: str = "/users", **data: object):
    page = await http.get(form)
    return await http.post(url, data={**data, "csrf_token": csrf_token(page.text)})


async def _user(runtime: Runtime, email: str) -> User:
    async with runtime.system_sessions() as session:
        user = await session.scalar(select(User).where(User.email == email))
        assert user is not None
        return user


async def _audited(runtime: Runtime, action: str) -> list[AuditEvent]:
    async with runtime.system_sessions() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


async def test_list_and_create(admin: httpx.AsyncClient, world: World, runtime: Runtime) -> None:
    page = await admin.get("/users")
    assert page.status_code == 200
    assert "viewer@acme.test" in page.text and "admin@other.test" not in page.text
    created = await _post(admin, "/users", **NEW)
    assert created.status_code == 303
    user = await _user(runtime, "kim@acme.test")
    assert created.headers["location"] == f"/users/{user.id}?done=created"
    assert user.role == "ENGINEER" and user.full_name == "Kim Minji"
    assert len(await _audited(runtime, "user.create")) == 1
    korean = await admin.get("/users?lang=ko")
    assert "사용자" in korean.text


@pytest.mark.parametrize(
    ("changes", "status", "message"),
    [
        ({"email": "viewer@acme.test"}, 409, "already exists"),
        ({"password": "short"}, 422, "at least 10 characters"),
        ({"email": "not-an-address"}, 422, "Enter a valid e-mail address."),
        ({"role": "GOD"}, 422, "Pick a role from the list."),
    ],
)
async def test_create_refusals(
    admin: httpx.AsyncClient, world: World, changes: dict[str, str], status: int, message: str
) -> None:
    response = await _post(admin, "/users", **{**NEW, **changes})
    assert response.status_code == status and message in response.text
    assert "Kim Minji" in response.text  # the form keeps what was typed


async def test_edit_role_and_scope(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    viewer = await _user(runtime, "viewer@acme.test")
    url = f"/users/{viewer.id}"
    page = await admin.get(url)
    assert page.status_code == 200 and "lab-pc-01" in page.text
    async with runtime.system_sessions() as session:
        group = await session.scalar(select(Group).where(Group.tenant_id == world.acme.id))
        assert group is not None
    saved = await _post(
        admin,
        url,
        url,
        full_name="Viewer Park",
        role="ENGINEER",
        active="1",
        device_access="limited",
        groups=str(group.id),
        devices=str(world.device_id),
        deny_groups=[],
        limit_command_types="1",
        command_types=["shell", "service"],
        command_allow="systemctl restart *\nuptime",
        command_deny="rm *",
        window_0_days=["mon", "tue"],
        window_0_start="09:00",
        window_0_end="18:00",
        window_1_start="",
        window_1_end="",
        approval_required="1",
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{url}?done=saved"
    user = await _user(runtime, "viewer@acme.test")
    assert user.role == "ENGINEER" and user.full_name == "Viewer Park"
    assert user.scope["groups"] == [str(group.id)]
    assert user.scope["devices"] == [str(world.device_id)]
    assert user.scope["command_types"] == ["shell", "service"]
    assert user.scope["command_allow"] == ["systemctl restart *", "uptime"]
    assert user.scope["time_windows"] == [
        {"days": ["mon", "tue"], "start": "09:00", "end": "18:00"}
    ]
    assert user.scope["approval_required"] is True
    events = await _audited(runtime, "user.update")
    assert len(events) == 1 and events[0].risk == "high"
    shown = await admin.get(f"{url}?done=saved")
    assert "The changes were saved." in shown.text and "systemctl restart *" in shown.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"device_access": "limited", "device_ids": "not-a-uuid"}, "The scope is not valid"),
        ({"device_access": "limited", "device_ids": str(uuid.uuid4())}, "The scope is not valid"),
        (
            {"window_0_days": "mon", "window_0_start": "25:00", "window_0_end": "10:00"},
            "The scope is not valid",
        ),
    ],
)
async def test_invalid_scope(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, fields: dict[str, str], message: str
) -> None:
    viewer = await _user(runtime, "viewer@acme.test")
    url = f"/users/{viewer.id}"
    response = await _post(admin, url, url, role="VIEWER", active="1", **fields)
    assert response.status_code == 422 and message in response.text
    assert (await _user(runtime, "viewer@acme.test")).scope == {}


async def test_another_tenants_device_is_not_a_scope(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    viewer = await _user(runtime, "viewer@acme.test")
    url = f"/users/{viewer.id}"
    response = await _post(
        admin,
        url,
        url,
        role="VIEWER",
        active="1",
        device_access="limited",
        device_ids=str(world.other_device_id),
    )
    assert response.status_code == 422


async def test_own_account_and_last_admin(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    me = await _user(runtime, "admin@acme.test")
    url = f"/users/{me.id}"
    last = "The organisation needs at least one active administrator."
    assert last in (await _post(admin, url, url, role="VIEWER", active="1")).text
    assert last in (await _post(admin, url, url, role="ADMIN")).text  # disabling
    await _post(admin, "/users", **{**NEW, "role": "ADMIN"})
    demoted = await _post(admin, url, url, role="VIEWER", active="1")
    assert demoted.status_code == 409
    assert "You cannot disable your own account or change your own role." in demoted.text
    assert (await _user(runtime, "admin@acme.test")).role == "ADMIN"


async def test_reset_mfa_and_sign_out(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, app: object
) -> None:
    viewer = await _user(runtime, "viewer@acme.test")
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as other:
        await login(other, "viewer@acme.test")
        assert (await other.get("/devices")).status_code == 200
        url = f"/users/{viewer.id}"
        out = await _post(admin, f"{url}/revoke-sessions", url)
        assert out.status_code == 303 and out.headers["location"] == f"{url}?done=signed_out"
        assert (await other.get("/devices")).status_code == 303
    reset = await _post(admin, f"{url}/reset-mfa", url)
    assert reset.status_code == 303
    assert len(await _audited(runtime, "mfa.reset")) == 1
    assert len(await _audited(runtime, "session.revoke_all")) == 1


async def test_viewer_is_refused(viewer: httpx.AsyncClient, world: World, runtime: Runtime) -> None:
    me = await _user(runtime, "viewer@acme.test")
    assert 'href="/users"' not in (await viewer.get("/devices")).text
    for url in ("/users", f"/users/{me.id}"):
        response = await viewer.get(url)
        assert response.status_code == 403 and "Access denied" in response.text


async def test_another_tenants_user_is_not_found(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    other = await _user(runtime, "admin@other.test")
    page = await admin.get("/users")
    token = csrf_token(page.text)
    assert (await admin.get(f"/users/{other.id}")).status_code == 404
    for suffix in ("", "/reset-mfa", "/revoke-sessions"):
        response = await admin.post(
            f"/users/{other.id}{suffix}", data={"role": "VIEWER", "csrf_token": token}
        )
        assert response.status_code == 404
    assert (await admin.get("/users/not-a-uuid")).status_code == 404


@pytest.mark.parametrize("suffix", ["", "/reset-mfa", "/revoke-sessions"])
async def test_csrf_is_required(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, suffix: str
) -> None:
    viewer = await _user(runtime, "viewer@acme.test")
    response = await admin.post(f"/users/{viewer.id}{suffix}", data={"role": "VIEWER"})
    assert response.status_code == 403 and "Request refused" in response.text
    assert (await admin.post("/users", data=NEW)).status_code == 403
