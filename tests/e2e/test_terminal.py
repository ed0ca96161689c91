"""The web terminal in Chromium, on a real enrolled agent: type, see, resize, watch, close,
then find the same text in the recording's playback."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Installation
from tests.support import wait_for
from tests.terminal.support import use_plain_shell

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-123"


def _user(installation: Installation, tenant: str, email: str, role: str) -> None:
    made = installation.steward(
        "user", "create", "--tenant", tenant, "--email", email, "--role", role,
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


def _sign_in(page: Any, installation: Installation, tenant: str, email: str) -> None:
    page.goto(f"{installation.tenant_url(tenant)}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/devices")


def _enrolled_agent(installation: Installation, tenant: str, email: str, tmp: Path) -> str:
    pin = installation.steward("pin", "create", "--tenant", tenant).stdout.strip().splitlines()[-1]
    machine = {"STEWARD_AGENT_MACHINE_ID": f"e2e-terminal-{uuid.uuid4().hex}"}
    enrolled = installation.agent_cli(
        "enroll", "--server", installation.url, "--pin", pin, "--state-dir", str(tmp), **machine
    )
    assert enrolled.returncode == 0, enrolled.stderr
    installation.start_agent(tmp, **machine)
    with installation.api(tenant, email, PASSWORD) as api:
        use_plain_shell(api, tmp.parent)

        def online() -> str | None:
            devices: list[dict[str, Any]] = api.get("/api/v1/devices").json()
            return next((str(d["id"]) for d in devices if d["online"]), None)

        return str(wait_for(online, timeout=20))


def _screen(page: Any) -> str:
    return str(page.locator("#terminal .xterm-rows").inner_text())


def test_terminal_watch_and_playback(
    installation: Installation, browser: Any, tmp_path: Path
) -> None:
    tenant = f"term{uuid.uuid4().hex[:6]}"
    assert installation.steward("tenant", "create", tenant, "--name", "Terminal").returncode == 0
    admin, engineer = f"admin@{tenant}.example", f"engineer@{tenant}.example"
    _user(installation, tenant, admin, "ADMIN")
    _user(installation, tenant, engineer, "ENGINEER")
    device_id = _enrolled_agent(installation, tenant, admin, tmp_path / "agent")

    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    _sign_in(page, installation, tenant, admin)
    page.goto(f"{installation.tenant_url(tenant)}/devices/{device_id}")
    page.click("#open-terminal")
    page.wait_for_url(f"**/devices/{device_id}/terminal")
    page.locator("#terminal-status.text-success").wait_for(timeout=15_000)
    session_id = page.locator("#terminal-session").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", session_id)

    page.locator("#terminal").click()
    page.keyboard.type("echo steward-$RANDOM\n")
    wait_for(lambda: re.search(r"^steward-\d+", _screen(page), re.M), timeout=15)
    marker = re.search(r"^(steward-\d+)", _screen(page), re.M).group(1)  # type: ignore[union-attr]

    # a second user watches: sees the output so far, the owner sees them, they cannot type
    watcher_context = browser.new_context()
    watch = watcher_context.new_page()
    _sign_in(watch, installation, tenant, engineer)
    watch.goto(f"{installation.tenant_url(tenant)}/terminal/sessions/{session_id}/watch")
    watch.locator("#terminal-status.text-success").wait_for(timeout=15_000)
    wait_for(lambda: marker in _screen(watch), timeout=10)
    page.locator("#terminal-watchers", has_text=engineer).wait_for(timeout=10_000)
    watch.locator("#terminal").click()
    watch.keyboard.type("echo watcher-typed\n")
    time.sleep(0.5)
    assert "watcher-typed" not in _screen(page)

    # resize: the shell sees the new size
    page.set_viewport_size({"width": 900, "height": 600})
    time.sleep(0.5)
    cols = page.evaluate("window.stewardTerminal.cols")
    rows = page.evaluate("window.stewardTerminal.rows")
    page.locator("#terminal").click()
    page.keyboard.type("stty size\n")
    wait_for(lambda: f"{rows} {cols}" in _screen(page), timeout=10)
    page.keyboard.type("echo after-$((20+22))\n")
    wait_for(lambda: "after-42" in _screen(watch), timeout=10)

    page.click("#terminal-close")
    page.locator("#terminal-status.text-secondary").wait_for(timeout=15_000)
    watch.locator("#terminal-status", has_text="closed").wait_for(timeout=15_000)
    watcher_context.close()

    # the recording: search finds the marker, the player loads it
    page.goto(f"{installation.tenant_url(tenant)}/terminal/sessions?device={device_id}")
    page.locator(f"tr[data-session='{session_id}'] a", has_text="Open").click()
    page.wait_for_url(f"**/terminal/sessions/{session_id}")
    page.fill("#q", marker)
    page.click("#transcript-search button[type=submit]")
    match = page.locator("#transcript-matches code", has_text=marker).first
    match.wait_for(timeout=10_000)
    page.locator("#player .ap-player").wait_for(timeout=15_000)
    page.locator("#transcript-matches [data-seek]").first.click()
    wait_for(lambda: marker in page.locator("#player").inner_text(), timeout=15)

    sha = page.locator("#recording-sha256").inner_text().strip()
    with installation.api(tenant, admin, PASSWORD) as api:
        cast = api.get(f"/api/v1/terminal/sessions/{session_id}/recording")
        events = api.get("/api/v1/audit/events", params={"action": "terminal."}).json()["events"]
    assert hashlib.sha256(cast.content).hexdigest() == sha
    actions = {e["action"] for e in events if e["target"] == session_id}
    assert {"terminal.open", "terminal.watch", "terminal.unwatch", "terminal.close"} <= actions
    assert not errors, errors
    context.close()
