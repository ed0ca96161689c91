"""Live command output in Chromium: a running command's page fills in as the agent (speaking
the real protocol through the poll endpoint) sends output, without re-rendering every second,
and shows the final result when it ends."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Installation

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-123"


def _tenant_with_admin(installation: Installation) -> tuple[str, str]:
    tenant, email = f"live{uuid.uuid4().hex[:6]}", "admin@live.example"
    assert installation.steward("tenant", "create", tenant, "--name", "Live").returncode == 0
    made = installation.steward(
        "user", "create", "--tenant", tenant, "--email", email, "--role", "ADMIN",
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return tenant, email


def _poll(installation: Installation, creds: dict[str, str], *messages: Any) -> list[Any]:
    response = httpx.post(
        f"{installation.url}/api/agent/v1/poll",
        json={"messages": list(messages)},
        headers={"Authorization": f"Agent {creds['agent_id']}:{creds['agent_secret']}"},
        timeout=10,
    )
    response.raise_for_status()
    answer: list[Any] = response.json()["messages"]
    return answer


def _output(command_id: str, offset: int, data: str) -> dict[str, Any]:
    return {
        "type": "command.output",
        "command_id": command_id,
        "stream": "stdout",
        "offset": offset,
        "data": data,
    }


def test_live_output_appears_in_the_command_panel(installation: Installation, browser: Any) -> None:
    tenant, email = _tenant_with_admin(installation)
    pin_run = installation.steward("pin", "create", "--tenant", tenant)
    assert pin_run.returncode == 0, pin_run.stderr
    pin = pin_run.stdout.strip().splitlines()[-1]
    creds = httpx.post(
        f"{installation.url}/api/agent/v1/enroll",
        json={"pin": pin, "machine_id": uuid.uuid4().hex, "hostname": "live-pc",
              "agent_version": "test", "os_name": "Linux"},
        timeout=10,
    ).raise_for_status().json()  # fmt: skip
    with installation.api(tenant, email, PASSWORD) as api:
        created = api.post(
            f"/api/v1/devices/{creds['device_id']}/commands",
            json={"type": "shell", "payload": {"command": "./build.sh"}},
        )
        assert created.status_code == 201, created.text
    command_id = created.json()["id"]
    assert any(m["type"] == "command.dispatch" for m in _poll(installation, creds))
    _poll(installation, creds, {"type": "command.ack", "command_id": command_id})

    page = browser.new_page()
    errors: list[str] = []
    panel_loads: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda r: panel_loads.append(r.url) if r.url.endswith("/panel") else None)
    base = installation.tenant_url(tenant)
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/devices")
    page.goto(f"{base}/commands/{command_id}")
    page.wait_for_selector(".command-panel[data-streaming='1']")
    stdout = page.locator("pre[data-output='stdout']")

    _poll(installation, creds, _output(command_id, 0, "step 1\n"))
    page.wait_for_function(
        "document.querySelector(\"pre[data-output='stdout']\").textContent === 'step 1\\n'"
    )
    hostile = "<img src=x onerror=alert(1)><b>bold</b>\n"
    # a repeat of the first chunk and the next one: the repeat adds nothing
    _poll(
        installation,
        creds,
        _output(command_id, 0, "step 1\n"),
        _output(command_id, 7, hostile),
    )
    page.wait_for_function(
        "document.querySelector(\"pre[data-output='stdout']\").textContent.endsWith('</b>\\n')"
    )
    assert stdout.text_content() == "step 1\n" + hostile
    assert stdout.locator("img, b").count() == 0, "agent output must stay text"
    page.wait_for_timeout(2500)  # the panel would have re-rendered twice by polling
    assert panel_loads == [], f"the panel polled while streaming: {panel_loads}"

    _poll(
        installation,
        creds,
        {
            "type": "command.result",
            "command_id": command_id,
            "status": "succeeded",
            "exit_code": 0,
            "stdout": "step 1\n" + hostile + "finished\n",
        },
    )
    page.wait_for_selector(".command-panel:not([data-stream-url])")
    assert stdout.text_content() == "step 1\n" + hostile + "finished\n"
    assert stdout.locator("img, b").count() == 0
    # The reload on `done` (under load on PostgreSQL a second re-render has been seen at the
    # end, cause not yet found; the point here is that nothing polled while it streamed).
    assert 1 <= len(panel_loads) <= 2, panel_loads
    assert errors == []
    page.close()
