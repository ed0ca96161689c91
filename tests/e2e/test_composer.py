"""The composer in Chromium with a real agent process: pick shell, target the enrolled device,
see the risk before submitting, run a safe command, follow the job to its end and read the
output on the command page."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Installation
from tests.support import wait_for

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-123"


def _tenant_with_admin(installation: Installation) -> tuple[str, str]:
    tenant, email = f"run{uuid.uuid4().hex[:6]}", "admin@run.example"
    assert installation.steward("tenant", "create", tenant, "--name", "Run").returncode == 0
    made = installation.steward(
        "user", "create", "--tenant", tenant, "--email", email, "--role", "ADMIN",
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return tenant, email


def _online_agent(installation: Installation, tenant: str, email: str, state: Path) -> str:
    """A real `steward-agent` enrolled by PIN and running; its device id once it is online."""
    pin_run = installation.steward("pin", "create", "--tenant", tenant)
    assert pin_run.returncode == 0, pin_run.stderr
    pin = pin_run.stdout.strip().splitlines()[-1]
    machine = {"STEWARD_AGENT_MACHINE_ID": f"e2e-{uuid.uuid4().hex}"}
    enrolled = installation.agent_cli(
        "enroll", "--server", installation.url, "--pin", pin, "--state-dir", str(state),
        **machine,
    )  # fmt: skip
    assert enrolled.returncode == 0, enrolled.stderr
    installation.start_agent(state, **machine)
    with installation.api(tenant, email, PASSWORD) as api:
        device = wait_for(lambda: next(iter(api.get("/api/v1/devices").json()), None))
        wait_for(lambda: api.get(f"/api/v1/devices/{device['id']}").json()["online"])
    return str(device["id"])


def test_compose_check_the_risk_run_and_read_the_output(
    installation: Installation, browser: Any, tmp_path: Path
) -> None:
    tenant, email = _tenant_with_admin(installation)
    device_id = _online_agent(installation, tenant, email, tmp_path / "agent")
    base = installation.tenant_url(tenant)

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/devices")

    page.goto(f"{base}/run")
    page.select_option("#type", "shell")
    page.select_option("#devices", [device_id])
    page.locator("#target-count").get_by_text("1 device, 1 online").wait_for()

    page.fill("#p_command", "rm -rf /tmp/x")
    risk = page.locator("#preview [data-risk='high']")
    risk.wait_for()
    assert "High risk" in risk.inner_text()
    assert page.url.endswith("/run")  # nothing was submitted

    marker = f"steward-e2e-{uuid.uuid4().hex[:6]}"
    page.fill("#p_command", f"echo {marker}")
    page.locator("#preview [data-risk='low']").wait_for()
    assert page.locator("#preview [data-risk='high']").count() == 0
    page.click("#submit")
    page.wait_for_url("**/jobs/*")
    job_url = page.url
    # the progress part refreshes by itself until the job is over
    page.locator("#job-progress[data-job-status='succeeded']").wait_for(timeout=20_000)
    row = page.locator("#job-devices tr[data-command]")
    assert row.count() == 1 and "Succeeded" in row.inner_text()

    row.get_by_role("link", name="Output").click()
    page.wait_for_url("**/commands/*")
    page.locator("pre[data-output='stdout']", has_text=marker).wait_for()
    assert page.locator("#transitions [data-status='succeeded']").count() >= 1
    page.goto(job_url)
    assert page.locator("#cancel-job").count() == 0  # finished: nothing to cancel
    assert errors == []
    page.close()
