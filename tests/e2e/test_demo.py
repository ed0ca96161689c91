"""`make run` = `steward demo`: from an empty data directory to a console with a local agent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import _bin
from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e


def test_demo_sets_up_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {
        "STEWARD_DATA_DIR": str(tmp_path / "data"),
        "STEWARD_AGENT_MACHINE_ID": f"demo-{port}",
        "COLUMNS": "200",
    }
    env.pop("STEWARD_DATABASE_URL", None)
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            [_bin("steward"), "demo", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        try:
            text = wait_for(
                lambda: "Password:" in (t := log_path.read_text()) and t, timeout=60, interval=0.2
            )
            password = re.search(r"Password:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
            assert f"http://demo.localhost:{port}/" in text and "admin@demo.example" in text
            assert (tmp_path / "data" / "steward.db").exists()
            host = {"Host": f"demo.localhost:{port}"}
            token = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/auth/login",
                json={"email": "admin@demo.example", "password": password},
                headers=host,
            ).json()["access_token"]
            headers = host | {"Authorization": f"Bearer {token}"}
            devices = wait_for(
                lambda: [
                    d
                    for d in httpx.get(
                        f"http://127.0.0.1:{port}/api/v1/devices", headers=headers
                    ).json()
                    if d["online"]
                ],
                timeout=20,
            )
            assert devices[0]["hostname"] == os.uname().nodename
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(20)
            except subprocess.TimeoutExpired:
                demo.kill()
                raise
    assert demo.returncode in {0, -signal.SIGINT, 130}, log_path.read_text()
    time.sleep(0.5)
    leftovers = subprocess.run(
        ["pgrep", "-f", f"steward-agent run --state-dir {tmp_path}"], capture_output=True
    )
    assert leftovers.stdout == b"", "the demo left its agent running"
    # a second start reuses the data: same password, no second tenant
    assert (tmp_path / "data" / "demo-admin-password").read_text().strip() == password
