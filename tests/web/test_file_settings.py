"""The file settings page (tenant.manage): the policy of `/api/v1/tenant/file-policy`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from steward.server.accounts.models import Role
from steward.server.audit.models import AuditEvent
from steward.server.runtime import Runtime
from tests.web.support import World, bearer, csrf_token, make_user

URL = "/settings/files"
API = "/api/v1/tenant/file-policy"
FORM = {
    "linux_roots": "/srv/data\n\n  /home  \n",
    "windows_roots": "D:\\Shares",
    "max_upload_mib": "512",
    "max_editor_mib": "0.5",
    "max_backup_mib": "2048",
    "backup_keep_versions": "5",
    "backup_keep_days": "0",
}
DEFAULTS = {
    "linux_roots": ["/home", "/srv", "/tmp", "/var/log"],
    "windows_roots": ["C:\\Users", "C:\\ProgramData\\Steward", "C:\\Temp"],
    "allow_system_dirs": False,
    "max_upload_bytes": 2 * 1024**3,
    "max_editor_bytes": 1024**2,
    "max_backup_bytes": 1024**3,
    "backup_keep_versions": 10,
    "backup_keep_days": 30,
}


async def _post(http: httpx.AsyncClient, **changes: str) -> httpx.Response:
    page = await http.get(URL)
    return await http.post(URL, data={**FORM, **changes, "csrf_token": csrf_token(page.text)})


async def _policy(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get(API, headers=await bearer(http, "admin@acme.test"))
    assert response.status_code == 200, response.text
    policy: dict[str, Any] = response.json()
    return policy


async def _audited(runtime: Runtime) -> list[AuditEvent]:
    async with runtime.system_sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action == "file.policy.update")
        return list(await session.scalars(query))


async def test_admin_saves_the_policy(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    page = await admin.get(URL)
    assert page.status_code == 200 and "/var/log" in page.text and "C:\\ProgramData" in page.text
    assert 'value="2048"' in page.text and 'value="1"' in page.text  # 2 GiB and 1 MiB
    assert "the defaults apply" in page.text
    assert 'href="/settings/files"' in (await admin.get("/devices")).text

    saved = await _post(admin)
    assert saved.status_code == 303 and saved.headers["location"] == f"{URL}?saved=1"
    assert await _policy(admin) == {
        "linux_roots": ["/srv/data", "/home"],
        "windows_roots": ["D:\\Shares"],
        "allow_system_dirs": False,
        "max_upload_bytes": 512 * 1024**2,
        "max_editor_bytes": 512 * 1024,
        "max_backup_bytes": 2 * 1024**3,
        "backup_keep_versions": 5,
        "backup_keep_days": 0,
    }
    events = await _audited(runtime)
    assert len(events) == 1 and events[0].risk == "high"
    assert events[0].tenant_id == world.acme.id
    assert events[0].detail["linux_roots"] == ["/srv/data", "/home"]

    shown = await admin.get(f"{URL}?saved=1")
    assert "The file settings were saved." in shown.text and "Last changed" in shown.text
    assert "/srv/data\n/home</textarea>" in shown.text and 'value="0.5"' in shown.text
    assert "파일 설정" in (await admin.get(f"{URL}?lang=ko")).text


async def test_system_directories_need_the_flag(admin: httpx.AsyncClient, world: World) -> None:
    refused = await _post(admin, linux_roots="/etc\n/srv")
    assert refused.status_code == 422 and "/etc is a system directory" in refused.text
    allowed = await _post(admin, linux_roots="/etc\n/srv", allow_system_dirs="1")
    assert allowed.status_code == 303
    policy = await _policy(admin)
    assert policy["linux_roots"] == ["/etc", "/srv"] and policy["allow_system_dirs"] is True


async def test_sizes_set_through_the_api_are_shown_exactly(
    admin: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(admin, "admin@acme.test")
    put = await admin.put(API, json={**DEFAULTS, "max_editor_bytes": 1536}, headers=headers)
    assert put.status_code == 200
    page = await admin.get(URL)
    assert 'value="0.00146484375"' in page.text
    assert (await _post(admin, max_editor_mib="0.00146484375")).status_code == 303
    assert (await _policy(admin))["max_editor_bytes"] == 1536


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("linux_roots", "srv/data", "srv/data is not an absolute Linux path"),
        ("linux_roots", "/srv/../etc", "is not an absolute Linux path"),
        ("windows_roots", "/srv", "/srv is not an absolute Windows path"),
        ("windows_roots", "C:\\Windows", "is a system directory"),
        ("linux_roots", "\n".join(f"/srv/{n}" for n in range(33)), "at most 32 directories"),
        ("max_upload_mib", "-1", "from 0 to 1048576"),
        ("max_editor_mib", "5", "from 0 to 4"),
        ("max_backup_mib", "lots", "from 0 to 1048576"),
        ("backup_keep_versions", "0", "from 1 to 1000"),
        ("backup_keep_days", "9999", "from 0 to 3650"),
    ],
)
async def test_bad_values_are_explained_and_change_nothing(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, field: str, value: str, message: str
) -> None:
    response = await _post(admin, **{field: value})
    assert response.status_code == 422 and message in response.text
    assert f'id="{field}-error"' in response.text
    assert 'value="2048"' in response.text or field == "max_backup_mib"  # what was sent is kept
    assert await _policy(admin) == DEFAULTS
    assert await _audited(runtime) == []


async def test_viewer_and_engineer_are_refused(
    viewer: httpx.AsyncClient, world: World, runtime: Runtime, browser: Any
) -> None:
    assert (await viewer.get(URL)).status_code == 403
    assert 'href="/settings/files"' not in (await viewer.get("/devices")).text
    await make_user(runtime, world.acme, "engineer@acme.test", Role.ENGINEER)
    engineer = await browser("engineer@acme.test")
    assert (await engineer.get(URL)).status_code == 403
    token = csrf_token((await engineer.get("/devices")).text)
    assert (await engineer.post(URL, data={**FORM, "csrf_token": token})).status_code == 403
    assert await _policy(viewer) == DEFAULTS


async def test_csrf_is_required(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.post(URL, data=FORM)
    assert response.status_code == 403 and "Request refused" in response.text
    assert await _policy(admin) == DEFAULTS
