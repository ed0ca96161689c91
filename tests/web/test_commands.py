"""Running a shell command from a device's page and following its result panel."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import select

from steward.protocol import CommandResult, CommandStatus
from steward.server.commands.delivery import record_result
from steward.server.commands.models import Command
from steward.server.runtime import Runtime
from tests.web.support import World, csrf_token, htmx, login, make_user


async def _device_page_token(http: httpx.AsyncClient, world: World) -> str:
    return csrf_token((await http.get(f"/devices/{world.device_id}")).text)


async def _commands(runtime: Runtime) -> list[Command]:
    async with runtime.system_sessions() as session:
        return list(await session.scalars(select(Command)))


async def test_run_command_creates_it_and_shows_a_polling_panel(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _device_page_token(admin, world)
    response = await admin.post(
        f"/devices/{world.device_id}/commands",
        headers=htmx(token),
        data={"command": "echo <hello>", "interpreter": "bash"},
    )
    assert response.status_code == 200
    [command] = await _commands(runtime)
    assert command.device_id == world.device_id
    assert command.type == "shell"
    assert command.payload == {"command": "echo <hello>", "interpreter": "bash"}
    assert command.status == CommandStatus.QUEUED
    assert command.created_by == "admin@acme.test"
    assert f'hx-get="/commands/{command.id}/panel" hx-trigger="every 1s"' in response.text
    assert "echo &lt;hello&gt;" in response.text
    assert "Queued" in response.text


async def test_panel_stops_polling_once_the_result_is_final(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _device_page_token(admin, world)
    await admin.post(
        f"/devices/{world.device_id}/commands", headers=htmx(token), data={"command": "uname"}
    )
    [command] = await _commands(runtime)
    async with runtime.system_sessions() as session:
        await record_result(
            session,
            command.tenant_id,
            world.device_id,
            CommandResult(
                command_id=str(command.id),
                status=CommandStatus.FAILED,
                exit_code=2,
                stdout="<img src=x onerror=alert(1)>",
                stderr="no such file",
            ),
        )
        await session.commit()
    panel = await admin.get(f"/commands/{command.id}/panel", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert "hx-trigger" not in panel.text  # final: the panel no longer polls
    assert "Failed" in panel.text and "exit code 2" in panel.text
    assert re.search(r"<pre[^>]*>&lt;img src=x onerror=alert\(1\)&gt;</pre>", panel.text)
    assert "no such file" in panel.text
    assert panel.headers["HX-Trigger"] == "steward-commands-changed"

    recent = await admin.get(f"/devices/{world.device_id}/commands")
    assert "uname" in recent.text and "Failed" in recent.text
    page = await admin.get(f"/commands/{command.id}")
    assert page.status_code == 200 and "lab-pc-01" in page.text


async def test_without_htmx_the_form_leads_to_the_command_page(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _device_page_token(admin, world)
    response = await admin.post(
        f"/devices/{world.device_id}/commands", data={"command": "id", "csrf_token": token}
    )
    assert response.status_code == 303
    [command] = await _commands(runtime)
    assert response.headers["location"] == f"/commands/{command.id}"


async def test_an_empty_or_unknown_shell_command_is_refused(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _device_page_token(admin, world)
    for data in ({"command": ""}, {"command": "id", "interpreter": "fish"}):
        response = await admin.post(
            f"/devices/{world.device_id}/commands", headers=htmx(token), data=data
        )
        assert response.status_code == 422
        assert "Invalid command" in response.text
    assert await _commands(runtime) == []


async def test_viewer_cannot_run_commands(
    viewer: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    page = await viewer.get(f"/devices/{world.device_id}")
    assert page.status_code == 200
    assert "Run command" not in page.text
    response = await viewer.post(
        f"/devices/{world.device_id}/commands",
        headers=htmx(csrf_token(page.text)),
        data={"command": "id"},
    )
    assert response.status_code == 403
    assert "Access denied" in response.text
    assert await _commands(runtime) == []


async def test_commands_on_another_tenants_device_are_not_found(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _device_page_token(admin, world)
    response = await admin.post(
        f"/devices/{world.other_device_id}/commands", headers=htmx(token), data={"command": "id"}
    )
    assert response.status_code == 404
    assert await _commands(runtime) == []
    assert (await admin.get(f"/commands/{uuid.uuid4()}/panel")).status_code == 404


async def test_an_approver_approves_from_the_command_page(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    """A user whose scope requires approval: the command waits; another user approves it on
    the command page; the requester sees no buttons on their own and cannot approve it."""
    from sqlalchemy import update

    from steward.server.accounts.models import Role, User

    await make_user(runtime, world.acme, "engineer@acme.test", Role.ENGINEER)
    async with runtime.system_sessions() as session:
        await session.execute(
            update(User)
            .where(User.email == "engineer@acme.test")
            .values(scope={"approval_required": True})
        )
        await session.commit()
    assert (await login(client, "engineer@acme.test")).status_code == 303
    token = await _device_page_token(client, world)
    created = await client.post(
        f"/devices/{world.device_id}/commands", data={"command": "echo wait", "csrf_token": token}
    )
    assert created.status_code == 303
    command_url = created.headers["location"]
    own = await client.get(command_url)
    assert "Waiting for approval" in own.text and 'id="approve"' not in own.text
    refused = await client.post(f"{command_url}/approve", data={"csrf_token": token})
    assert refused.status_code == 403
    await client.post("/logout", data={"csrf_token": token})
    assert (await login(client, "admin@acme.test")).status_code == 303
    page = await client.get(command_url)
    assert 'id="approve"' in page.text
    approved = await client.post(
        f"{command_url}/approve", data={"csrf_token": csrf_token(page.text)}
    )
    assert approved.status_code == 303
    assert "Queued" in (await client.get(command_url)).text
