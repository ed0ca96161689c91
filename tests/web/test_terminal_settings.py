"""The terminal settings page (tenant.manage): the policy of `/api/v1/tenant/terminal-policy`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from steward.server.accounts.models import Role
from steward.server.audit.models import AuditEvent
from steward.server.runtime import Runtime
from tests.web.support import World, bearer, csrf_token, make_user

URL = "/settings/terminal"
API = "/api/v1/tenant/terminal-policy"
FORM = {
    "shell": "/bin/bash",
    "run_as": "operator",
    "idle_timeout_min": "30",
    "max_duration_min": "90",
    "record_input": "1",
    "recording_failure_policy": "best_effort",
    "require_step_up": "1",
}
DEFAULTS = {
    "shell": "",
    "run_as": "",
    "idle_timeout_s": 900,
    "max_duration_s": 14400,
    "record_input": False,
    "recording_failure_policy": "strict",
    "require_step_up": False,
}


async def _post(http: httpx.AsyncClient, **changes: str) -> httpx.Response:
    page = await http.get(URL)
    return await http.post(URL, data={**FORM, **changes, "csrf_token": csrf_token(page.text)})


async def _policy(http: httpx.AsyncClient) -> dict[str, object]:
    response = await http.get(API, headers=await bearer(http, "admin@acme.test"))
    assert response.status_code == 200, response.text
    policy: dict[str, object] = response.json()
    return policy


async def test_admin_saves_the_policy(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    page = await admin.get(URL)
    assert page.status_code == 200
    assert 'value="15"' in page.text and 'value="240"' in page.text  # the defaults, in minutes
    assert 'id="failure-strict" value="strict" checked' in page.text
    assert "passwords typed at prompts" in page.text and "the defaults apply" in page.text
    assert 'href="/settings/terminal"' in (await admin.get("/devices")).text

    saved = await _post(admin)
    assert saved.status_code == 303 and saved.headers["location"] == f"{URL}?saved=1"
    assert await _policy(admin) == {
        "shell": "/bin/bash",
        "run_as": "operator",
        "idle_timeout_s": 1800,
        "max_duration_s": 5400,
        "record_input": True,
        "recording_failure_policy": "best_effort",
        "require_step_up": True,
    }
    async with runtime.system_sessions() as session:
        events = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "terminal.policy_update")
            )
        )
    assert len(events) == 1 and events[0].tenant_id == world.acme.id
    assert events[0].actor_name == "admin@acme.test" and events[0].detail["run_as"] == "operator"

    shown = await admin.get(f"{URL}?saved=1")
    assert "The terminal settings were saved." in shown.text and "Last changed" in shown.text
    assert 'value="/bin/bash"' in shown.text and 'value="90"' in shown.text
    assert "터미널 설정" in (await admin.get(f"{URL}?lang=ko")).text


async def test_seconds_set_through_the_api_are_shown_exactly(
    admin: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(admin, "admin@acme.test")
    put = await admin.put(API, json={**DEFAULTS, "idle_timeout_s": 90}, headers=headers)
    assert put.status_code == 200
    page = await admin.get(URL)
    assert 'value="1.5"' in page.text
    assert (await _post(admin, idle_timeout_min="1.5")).status_code == 303
    assert (await _policy(admin))["idle_timeout_s"] == 90


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("idle_timeout_min", "0", "from 1 to 1440"),
        ("idle_timeout_min", "abc", "from 1 to 1440"),
        ("idle_timeout_min", "1e999999999", "from 1 to 1440"),
        ("max_duration_min", "10081", "from 1 to 10080"),
        ("run_as", "root; rm -rf /", "Enter an account name"),
        ("shell", "/bin/sh\x07", "Enter an absolute path or a program name"),
        ("recording_failure_policy", "sometimes", "Pick what happens"),
    ],
)
async def test_bad_values_are_explained_and_change_nothing(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, field: str, value: str, message: str
) -> None:
    response = await _post(admin, **{field: value})
    assert response.status_code == 422 and message in response.text
    assert 'value="operator"' in response.text or field == "run_as"  # what was sent is kept
    assert f'id="{field}-error"' in response.text or field == "recording_failure_policy"
    assert await _policy(admin) == DEFAULTS
    async with runtime.system_sessions() as session:
        assert (
            await session.scalar(
                select(AuditEvent).where(AuditEvent.action == "terminal.policy_update")
            )
            is None
        )


async def test_viewer_and_engineer_are_refused(
    viewer: httpx.AsyncClient, world: World, runtime: Runtime, browser: Any
) -> None:
    assert (await viewer.get(URL)).status_code == 403
    assert 'href="/settings/terminal"' not in (await viewer.get("/devices")).text
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
