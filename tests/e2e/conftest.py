"""Real processes: `steward serve`, `steward-agent`, and Debian's Chromium through Playwright."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import IN_CI, Databases, free_port

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _bin(name: str) -> str:
    """The installed console script, next to this interpreter."""
    return str(Path(sys.executable).parent / name)


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        reason = "Debian's chromium is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@dataclass
class Installation:
    """A server process on a fresh database, with the CLI pointed at it."""

    url: str
    env: dict[str, str]
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def tenant_url(self, slug: str | None) -> str:
        """What a browser opens: `http://<slug>.localhost:<port>` (the platform host for None)."""
        return f"http://{f'{slug}.' if slug else ''}localhost:{self.port}"

    def api(self, slug: str, email: str, password: str) -> httpx.Client:
        """An API client signed in on the tenant's host (the server's own address, with the
        tenant's `Host`)."""
        headers = {"Host": f"{slug}.localhost:{self.port}"}
        response = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"email": email, "password": password},
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def steward(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_bin("steward"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            input=input,
            check=False,
        )

    def agent_cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_bin("steward-agent"), *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def start_agent(self, state_dir: Path, *extra: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"agent-{len(self.agents)}.log", "wb")  # noqa: SIM115
        self.logs.append(log)
        process = subprocess.Popen(
            [_bin("steward-agent"), "run", "--state-dir", str(state_dir), *extra],
            env=self.env | env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.agents.append(process)
        return process


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="module")
def installation(
    databases: Databases, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = os.environ | {
        "STEWARD_DATABASE_URL": databases.create(backend),
        "STEWARD_DATA_DIR": str(data_dir),
        "STEWARD_LOG_LEVEL": "warning",
        "PYTHONWARNINGS": "error::DeprecationWarning:steward",
    }
    found = Installation(url=f"http://127.0.0.1:{port}", env=env, data_dir=data_dir)
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115
    found.logs.append(log)
    found.process = subprocess.Popen(
        [_bin("steward"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{found.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or found.process.poll() is not None:
            raise RuntimeError((data_dir / "server.log").read_text())
        time.sleep(0.1)
    yield found
    for agent in found.agents:
        _stop(agent)
    _stop(found.process)
    for handle in found.logs:
        handle.close()
    # uvicorn re-raises the signal it stopped on after a clean shutdown
    assert found.process.returncode in {0, -signal.SIGTERM}, (data_dir / "server.log").read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
