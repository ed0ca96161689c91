"""From nothing to a command's output: CLI set-up, a real agent process enrolled by PIN, the
device online in the API and in Chromium, `echo` through the API, offline when the agent stops."""

from __future__ import annotations

import os
import signal
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Installation
from tests.support import wait_for

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-123"


def _api(installation: Installation, tenant: str, email: str) -> httpx.Client:
    return installation.api(tenant, email, PASSWORD)


def _tenant_with_admin(installation: Installation, prefix: str) -> tuple[str, str]:
    """A new tenant and its ADMIN, made with the CLI as an operator would."""
    tenant, email = f"{prefix}{uuid.uuid4().hex[:6]}", f"admin@{prefix}.example"
    assert installation.steward("tenant", "create", tenant, "--name", prefix).returncode == 0
    made = installation.steward(
        "user", "create", "--tenant", tenant, "--email", email, "--role", "ADMIN",
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return tenant, email


def _sign_in(page: Any, installation: Installation, tenant: str, email: str) -> None:
    """As a user would: the bare domain asks for the organisation and sends the browser on to
    the organisation's own host, where the e-mail and password go."""
    page.goto(f"{installation.tenant_url(None)}/login")
    page.fill("input[name=tenant]", tenant)
    page.click("button[type=submit]")
    page.wait_for_url(f"{installation.tenant_url(tenant)}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/devices")


def test_enroll_run_command_and_go_offline(
    installation: Installation, browser: Any, tmp_path: Path
) -> None:
    tenant, email = _tenant_with_admin(installation, "e2e")
    pin_run = installation.steward("pin", "create", "--tenant", tenant)
    assert pin_run.returncode == 0, pin_run.stderr
    pin = pin_run.stdout.strip().splitlines()[-1]

    state_dir = tmp_path / "agent"
    machine = {"STEWARD_AGENT_MACHINE_ID": f"e2e-{uuid.uuid4().hex}"}
    enrolled = installation.agent_cli(
        "enroll",
        "--server",
        installation.url,
        "--pin",
        pin,
        "--state-dir",
        str(state_dir),
        **machine,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    state_files = [p for p in state_dir.iterdir() if p.name.startswith("state")]
    assert state_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in state_files)
    reused = installation.agent_cli(
        "enroll",
        "--server",
        installation.url,
        "--pin",
        pin,
        "--state-dir",
        str(tmp_path / "x"),
        **machine,
    )
    assert reused.returncode != 0  # single use

    agent = installation.start_agent(state_dir, **machine)
    with _api(installation, tenant, email) as api:
        device = wait_for(lambda: next(iter(api.get("/api/v1/devices").json()), None), timeout=10)
        device = wait_for(
            lambda: (d := api.get(f"/api/v1/devices/{device['id']}").json())["online"] and d,
            timeout=10,
        )
        assert device["hostname"] == os.uname().nodename
        wait_for(lambda: api.get(f"/api/v1/devices/{device['id']}").json()["cpu_model"] != "")

        page = browser.new_page()
        _sign_in(page, installation, tenant, email)
        row = page.locator("tr", has_text=device["hostname"])
        row.wait_for()
        assert "Online" in row.inner_text()
        page.click(f"text={device['hostname']}")
        page.wait_for_url(f"**/devices/{device['id']}")
        page.locator("canvas").first.wait_for()
        assert device["hostname"] in page.content()

        marker = f"steward-{uuid.uuid4().hex[:8]}"
        created = api.post(
            f"/api/v1/devices/{device['id']}/commands",
            json={"type": "shell", "payload": {"command": f"echo {marker}"}},
        )
        assert created.status_code == 201
        command = wait_for(
            lambda: (
                (c := api.get(f"/api/v1/commands/{created.json()['id']}").json())["status"]
                in {"succeeded", "failed", "timed_out"}
                and c
            ),
            timeout=15,
        )
        assert command["status"] == "succeeded", command
        assert command["exit_code"] == 0 and command["stdout"].strip() == marker

        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
        wait_for(
            lambda: not api.get(f"/api/v1/devices/{device['id']}").json()["online"], timeout=10
        )
        page.goto(f"{installation.tenant_url(tenant)}/devices")
        assert "Offline" in page.locator("tr", has_text=device["hostname"]).inner_text()
        page.close()


def test_console_pages_open_in_chromium(installation: Installation, browser: Any) -> None:
    """Every console page renders in a real browser, in English and Korean, a group made in
    the page shows up in the device page's move list, and a file setting is saved."""
    tenant, email = _tenant_with_admin(installation, "pages")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    _sign_in(page, installation, tenant, email)
    for path, heading in [
        ("/devices", "Devices"),
        ("/devices/enroll", "Add device"),
        ("/groups", "Groups"),
        ("/settings/organisation", "Organisation"),
        ("/audit", "Audit log"),
        ("/approvals", "Approvals"),
        ("/settings/terminal", "Terminal settings"),
        ("/settings/files", "File settings"),
    ]:
        response = page.goto(f"{installation.tenant_url(tenant)}{path}")
        assert response is not None and response.status == 200, path
        assert heading in page.locator("h1").first.inner_text(), path
    page.goto(f"{installation.tenant_url(tenant)}/groups")
    page.fill("form[action='/groups'] input[name=name]", "lab-2")
    page.click("form[action='/groups'] button[type=submit]")
    page.wait_for_url("**/groups?done=created")
    assert page.locator("td", has_text="lab-2").count() == 1
    page.goto(f"{installation.tenant_url(tenant)}/groups?lang=ko")
    assert "그룹" in page.locator("h1").first.inner_text()
    page.goto(f"{installation.tenant_url(tenant)}/settings/organisation")
    assert "조직" in page.locator("h1").first.inner_text()
    page.goto(f"{installation.tenant_url(tenant)}/settings/files?lang=en")
    page.fill("#backup_keep_versions", "7")
    page.click("form[action='/settings/files'] button[type=submit]")
    page.wait_for_url("**/settings/files?saved=1")
    assert page.locator("[data-saved]").count() == 1
    assert page.input_value("#backup_keep_versions") == "7"
    assert errors == []
    page.close()
