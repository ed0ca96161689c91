"""Adding a device: the PIN page."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from steward.server.devices.models import EnrollmentPin
from steward.server.runtime import Runtime
from tests.web.support import World, csrf_token


async def test_enroll_shows_a_pin_and_the_commands_to_run(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    form = await admin.get("/devices/enroll")
    assert form.status_code == 200
    response = await admin.post(
        "/devices/enroll", data={"group": "", "ttl_s": "3600", "csrf_token": csrf_token(form.text)}
    )
    assert response.status_code == 200
    match = re.search(r"data-pin>(\d{6})<", response.text)
    assert match
    pin = match.group(1)
    assert f"steward-agent enroll --server http://acme.localhost --pin {pin}" in response.text
    assert "steward-agent run" in response.text
    async with runtime.system_sessions() as session:
        row = await session.scalar(select(EnrollmentPin).where(EnrollmentPin.created_by != "tests"))
    assert row is not None and row.tenant_id == world.acme.id
    expires = row.expires_at.astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%d %H:%M:%S")
    assert f"Expires at {expires}" in response.text


async def test_enroll_uses_the_configured_public_url(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    runtime.settings.public_url = "https://steward.example.org/"
    form = await admin.get("/devices/enroll")
    response = await admin.post(
        "/devices/enroll", data={"ttl_s": "600", "csrf_token": csrf_token(form.text)}
    )
    assert "--server https://steward.example.org --pin" in response.text


async def test_enroll_with_an_unknown_group_explains(
    admin: httpx.AsyncClient, world: World
) -> None:
    form = await admin.get("/devices/enroll")
    response = await admin.post(
        "/devices/enroll",
        data={"group": "<nope>", "ttl_s": "600", "csrf_token": csrf_token(form.text)},
    )
    assert response.status_code == 422
    assert "There is no group with this name." in response.text
    assert 'value="&lt;nope&gt;"' in response.text


async def test_viewer_cannot_add_devices(viewer: httpx.AsyncClient) -> None:
    assert (await viewer.get("/devices/enroll")).status_code == 403
    assert "Add device" not in (await viewer.get("/devices")).text
