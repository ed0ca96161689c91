"""The groups page (list, create, rename, delete) and moving a device from its page."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from steward.server.devices.models import Device
from steward.server.runtime import Runtime
from steward.server.tenancy import groups
from steward.server.tenancy.models import Group, Tenant
from tests.web.support import World, csrf_token


async def make_group(runtime: Runtime, tenant: Tenant, name: str) -> None:
    async with runtime.system_sessions() as session:
        await groups.create_group(session, tenant.id, name)
        await session.commit()


async def put_device(runtime: Runtime, device_id: uuid.UUID, group: str) -> None:
    async with runtime.system_sessions() as session:
        await groups.move_device(session, device_id, group)
        await session.commit()


async def group_names(runtime: Runtime, tenant: Tenant) -> dict[str, int]:
    async with runtime.system_sessions() as session:
        return {s.group.name: s.devices for s in await groups.list_groups(session, tenant.id)}


async def device_group(runtime: Runtime, device_id: uuid.UUID) -> str:
    async with runtime.system_sessions() as session:
        name = await session.scalar(
            select(Group.name)
            .join(Device, Device.group_id == Group.id)
            .where(Device.id == device_id)
        )
    assert name is not None
    return name


async def post(http: httpx.AsyncClient, url: str, **data: str) -> httpx.Response:
    page = await http.get("/groups")
    return await http.post(url, data={**data, "csrf_token": csrf_token(page.text)})


async def test_list_shows_groups_with_device_counts(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await make_group(runtime, world.acme, "pharmacy")
    await put_device(runtime, world.device_id, "pharmacy")
    await make_group(runtime, world.other, "other-secret-group")
    response = await admin.get("/groups")
    assert response.status_code == 200
    rows = response.text.split("<tr data-group>")[1:]
    assert len(rows) == 2
    assert "all" in rows[0] and ">2<" in rows[0]  # the default group first
    assert "pharmacy" in rows[1] and ">1<" in rows[1]
    assert "other-secret-group" not in response.text
    assert 'action="/groups/pharmacy/rename"' in response.text
    assert 'action="/groups/all/' not in response.text  # the default group stays
    assert 'action="/groups"' in response.text


async def test_create_rename_delete(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await post(admin, "/groups", name="  front desk ")
    assert created.status_code == 303 and created.headers["location"] == "/groups?done=created"
    assert "The group was created." in (await admin.get("/groups?done=created")).text

    renamed = await post(admin, "/groups/front%20desk/rename", new_name="reception")
    assert renamed.status_code == 303
    await put_device(runtime, world.device_id, "reception")
    await make_group(runtime, world.acme, "lab")

    refused = await post(admin, "/groups/reception/delete")
    assert refused.status_code == 409
    assert "This group still has devices." in refused.text
    assert "Traceback" not in refused.text
    assert "reception" in await group_names(runtime, world.acme)

    deleted = await post(admin, "/groups/reception/delete", move_to="lab")
    assert deleted.status_code == 303 and deleted.headers["location"] == "/groups?done=deleted"
    assert await group_names(runtime, world.acme) == {"all": 2, "lab": 1}
    assert await device_group(runtime, world.device_id) == "lab"

    empty = await post(admin, "/groups/lab/rename", new_name="lab")  # same name: fine
    assert empty.status_code == 303
    await put_device(runtime, world.device_id, "all")
    assert (await post(admin, "/groups/lab/delete")).status_code == 303  # empty: no target
    assert await group_names(runtime, world.acme) == {"all": 3}


@pytest.mark.parametrize(
    ("url", "data", "status", "message"),
    [
        ("/groups", {"name": "lab"}, 409, "A group with this name already exists."),
        ("/groups", {"name": ".."}, 422, "A group name is 1 to 100 characters"),
        ("/groups", {"name": "a/b"}, 422, "A group name is 1 to 100 characters"),
        ("/groups", {"name": "   "}, 422, "A group name is 1 to 100 characters"),
        ("/groups", {"name": "x" * 101}, 422, "A group name is 1 to 100 characters"),
        ("/groups/lab/rename", {"new_name": ".."}, 422, "A group name is 1 to 100 characters"),
        ("/groups/lab/rename", {"new_name": "kiosk"}, 409, "A group with this name already"),
        ("/groups/all/rename", {"new_name": "everything"}, 422, "The default group cannot"),
        ("/groups/all/delete", {"move_to": "lab"}, 422, "The default group cannot"),
        ("/groups/lab/delete", {}, 409, "This group still has devices."),
        ("/groups/lab/delete", {"move_to": "lab"}, 422, "cannot move to the group being deleted"),
        ("/groups/lab/delete", {"move_to": "nowhere"}, 422, "There is no group with this name."),
    ],
)
async def test_bad_requests_are_explained(
    admin: httpx.AsyncClient,
    world: World,
    runtime: Runtime,
    url: str,
    data: dict[str, str],
    status: int,
    message: str,
) -> None:
    await make_group(runtime, world.acme, "lab")
    await make_group(runtime, world.acme, "kiosk")
    await put_device(runtime, world.device_id, "lab")
    response = await post(admin, url, **data)
    assert response.status_code == status
    assert message in response.text
    assert "<tr data-group>" in response.text  # the page, with the list, not a bare error
    assert await group_names(runtime, world.acme) == {"all": 2, "kiosk": 0, "lab": 1}


async def test_a_typed_name_is_kept_after_an_error(admin: httpx.AsyncClient, world: World) -> None:
    response = await post(admin, "/groups", name="all")
    assert response.status_code == 409
    assert 'name="name" value="all"' in response.text


@pytest.mark.parametrize("url", ["/groups/..%2Fx/rename", "/groups/%2E%2E/rename"])
async def test_dot_dot_or_slash_in_the_path_is_not_found(
    admin: httpx.AsyncClient, world: World, url: str
) -> None:
    response = await post(admin, url, new_name="x")
    assert response.status_code == 404


async def test_another_tenants_groups_and_devices_are_invisible(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await make_group(runtime, world.other, "secret")
    await make_group(runtime, world.acme, "lab")
    for url, data in [
        ("/groups/secret/rename", {"new_name": "mine"}),
        ("/groups/secret/delete", {"move_to": "all"}),
    ]:
        response = await post(admin, url, **data)
        assert response.status_code == 404 and "Not found" in response.text
    assert "secret" in await group_names(runtime, world.other)

    moved = await post(admin, f"/devices/{world.other_device_id}/group", group="lab")
    assert moved.status_code == 404
    assert await device_group(runtime, world.other_device_id) == "all"
    # A group of the other tenant is not a target either.
    target = await post(admin, f"/devices/{world.device_id}/group", group="secret")
    assert target.status_code == 422 and "There is no group with this name." in target.text
    assert await device_group(runtime, world.device_id) == "all"


async def test_move_a_device_from_its_page(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await make_group(runtime, world.acme, "lab")
    page = await admin.get(f"/devices/{world.device_id}")
    assert f'action="/devices/{world.device_id}/group"' in page.text
    assert '<option value="lab">lab</option>' in page.text
    response = await admin.post(
        f"/devices/{world.device_id}/group",
        data={"group": "lab", "csrf_token": csrf_token(page.text)},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/devices/{world.device_id}"
    assert await device_group(runtime, world.device_id) == "lab"


async def test_viewer_sees_groups_but_cannot_change_them(
    viewer: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await make_group(runtime, world.acme, "lab")
    page = await viewer.get("/groups")
    assert page.status_code == 200 and "lab" in page.text
    assert 'action="/groups' not in page.text
    device = await viewer.get(f"/devices/{world.device_id}")
    assert '/group"' not in device.text and "Move to group" not in device.text
    for url, data in [
        ("/groups", {"name": "new"}),
        ("/groups/lab/rename", {"new_name": "x"}),
        ("/groups/lab/delete", {}),
        (f"/devices/{world.device_id}/group", {"group": "lab"}),
    ]:
        assert (await post(viewer, url, **data)).status_code == 403, url
    assert await group_names(runtime, world.acme) == {"all": 3, "lab": 0}


async def test_posts_without_csrf_are_refused(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await make_group(runtime, world.acme, "lab")
    for url, data in [
        ("/groups", {"name": "new"}),
        ("/groups/lab/rename", {"new_name": "x"}),
        ("/groups/lab/delete", {}),
        (f"/devices/{world.device_id}/group", {"group": "lab"}),
    ]:
        response = await admin.post(url, data=data)
        assert response.status_code == 403 and "Request refused" in response.text, url
    assert await group_names(runtime, world.acme) == {"all": 3, "lab": 0}


async def test_html_looking_names_are_escaped_and_encoded(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    name = '<img src=x onerror="alert(1)"> & ?#%'
    await make_group(runtime, world.acme, name)
    html = (await admin.get("/groups")).text
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; ?#%" in html
    encoded = "%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E%20%26%20%3F%23%25"
    assert f'action="/groups/{encoded}/rename"' in html
    renamed = await post(admin, f"/groups/{encoded}/rename", new_name="plain")
    assert renamed.status_code == 303
    assert "plain" in await group_names(runtime, world.acme)


async def test_korean(admin: httpx.AsyncClient, world: World) -> None:
    html = (await admin.get("/groups?lang=ko")).text
    assert '<html lang="ko"' in html
    for korean in ("그룹", "새 그룹", "그룹 만들기", "장치", "조직"):
        assert korean in html
    device = (await admin.get(f"/devices/{world.device_id}")).text
    assert "그룹 이동" in device
    refused = await post(admin, "/groups", name="all")
    assert "같은 이름의 그룹이 이미 있습니다." in refused.text
