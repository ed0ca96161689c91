"""The device list, its self-refreshing table, a device's page and its live parts."""

from __future__ import annotations

import asyncio
import re
import uuid
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from steward.server.accounts.models import Role
from steward.server.devices.models import DeviceStatus
from steward.server.runtime import Runtime
from tests.web.support import World, login, make_device, make_user


async def test_device_list_shows_counts_and_rows(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.get("/devices")
    assert response.status_code == 200
    html = response.text
    assert '<html lang="en"' in html
    assert 'data-count="total">3<' in html
    assert 'data-count="online">2<' in html
    assert 'data-count="offline">1<' in html
    assert "lab-pc-01" in html and "pharmacy-till-02" in html
    assert "192.0.2.10" in html and "38 %" in html  # IP and CPU of the live status
    assert "other-secret-host" not in html  # another tenant's device
    assert 'hx-trigger="every 5s"' in html
    assert response.headers["Cache-Control"] == "no-store"


async def test_hostnames_are_escaped(admin: httpx.AsyncClient, world: World) -> None:
    html = (await admin.get("/devices")).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    page = await admin.get(f"/devices/{world.script_device_id}")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_last_seen_is_shown_in_the_tenant_time_zone(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    async with runtime.system_sessions() as session:
        last_seen = await session.scalar(
            select(DeviceStatus.last_seen).where(DeviceStatus.device_id == world.device_id)
        )
    assert last_seen is not None
    seoul = last_seen.astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%d %H:%M:%S")
    html = (await admin.get("/devices")).text
    assert f'<time datetime="{last_seen.isoformat()}"' in html
    assert f">{seoul}</time>" in html
    assert "Times are shown in Asia/Seoul." in html
    assert re.search(r"1[23] seconds ago", html)


async def test_table_partial_keeps_search_and_page(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.get("/devices/table?q=LAB", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text  # a fragment, not a page
    assert "lab-pc-01" in response.text and "pharmacy-till-02" not in response.text
    assert 'hx-get="/devices/table?q=LAB"' in response.text
    assert response.headers["HX-Replace-Url"] == "/devices?q=LAB"


async def test_search_treats_wildcards_literally(admin: httpx.AsyncClient, world: World) -> None:
    html = (await admin.get("/devices/table?q=%25")).text
    assert "lab-pc-01" not in html
    assert "No device matches" in html


async def test_pagination(admin: httpx.AsyncClient, world: World, runtime: Runtime) -> None:
    for number in range(50):
        await make_device(runtime, world.acme, f"bulk-{number:02d}")
    first = (await admin.get("/devices")).text
    assert "1\N{EN DASH}50 of 53" in first and "Page 1 of 2" in first
    assert 'href="/devices?page=2"' in first
    second = await admin.get("/devices/table?page=2")
    assert "51\N{EN DASH}53 of 53" in second.text
    assert second.headers["HX-Replace-Url"] == "/devices?page=2"
    beyond = await admin.get("/devices/table?page=9")  # past the end: the last page
    assert "51\N{EN DASH}53 of 53" in beyond.text


async def test_device_page_shows_specs_processes_and_live_parts(
    admin: httpx.AsyncClient, world: World
) -> None:
    response = await admin.get(f"/devices/{world.device_id}")
    assert response.status_code == 200
    html = response.text
    for text in ("lab-pc-01", "Intel Core i5", "24.04", "8.0 GiB", "80 B of 100 B", "Run command"):
        assert text in html
    assert "&lt;b&gt;python&lt;/b&gt;" in html  # process names are agent data: escaped
    assert f'hx-get="/devices/{world.device_id}/status" hx-trigger="every 3s"' in html
    assert f'data-metrics-url="/devices/{world.device_id}/metrics.json?minutes=60"' in html
    assert "/static/vendor/chart.js/chart.umd.min.js" in html


async def test_status_partial_asks_the_agent_for_fast_heartbeats(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    fast = runtime.settings.watched_heartbeat_interval_s
    assert runtime.hub.interval_for(world.script_device_id) != fast
    response = await admin.get(
        f"/devices/{world.script_device_id}/status", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "Offline" in response.text and "<html" not in response.text
    for _ in range(100):  # the watch travels over the bus
        if runtime.hub.interval_for(world.script_device_id) == fast:
            break
        await asyncio.sleep(0.01)
    assert runtime.hub.interval_for(world.script_device_id) == fast


async def test_metrics_json(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.get(f"/devices/{world.device_id}/metrics.json?minutes=60")
    assert response.status_code == 200
    points = response.json()
    assert len(points) == 5
    assert set(points[0]) == {"at", "cpu_percent", "memory_percent"}
    assert [p["cpu_percent"] for p in points] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert (
        await admin.get(f"/devices/{world.device_id}/metrics.json?minutes=0")
    ).status_code == 422


async def test_metrics_json_needs_a_session(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(f"/devices/{world.device_id}/metrics.json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_required"


async def test_another_tenants_device_is_not_found(admin: httpx.AsyncClient, world: World) -> None:
    for url in (
        f"/devices/{world.other_device_id}",
        f"/devices/{world.other_device_id}/status",
        f"/devices/{world.other_device_id}/commands",
    ):
        response = await admin.get(url)
        assert response.status_code == 404, url
        assert "other-secret-host" not in response.text
    page = await admin.get(f"/devices/{world.other_device_id}")
    assert "Not found" in page.text and "<html" in page.text
    data = await admin.get(f"/devices/{world.other_device_id}/metrics.json")
    assert data.status_code == 404


async def test_unknown_and_malformed_ids_are_not_found(admin: httpx.AsyncClient) -> None:
    assert (await admin.get(f"/devices/{uuid.uuid4()}")).status_code == 404
    malformed = await admin.get("/devices/not-a-uuid")
    assert malformed.status_code == 404
    assert "Not found" in malformed.text


async def test_a_customer_sees_only_devices_assigned_to_them(
    client: httpx.AsyncClient, world: World
) -> None:
    assert (await login(client, "customer@acme.test")).status_code == 303
    response = await client.get("/devices")
    assert response.status_code == 200
    assert str(world.device_id) not in response.text  # nothing is assigned to them
    assert (await client.get(f"/devices/{world.device_id}")).status_code == 404
    refused = await client.get("/users")
    assert refused.status_code == 403 and "Access denied" in refused.text
    assert "customer@acme.test" in refused.text  # still a console page, with its menu


async def test_a_user_of_another_tenant_sees_only_their_devices(
    app: FastAPI, world: World, runtime: Runtime
) -> None:
    await make_user(runtime, world.other, "viewer@other.test", Role.VIEWER)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://other.localhost")
    assert (await login(client, "viewer@other.test")).status_code == 303
    html = (await client.get("/devices")).text
    assert "other-secret-host" in html and "lab-pc-01" not in html
    assert (await client.get(f"/devices/{world.device_id}")).status_code == 404
