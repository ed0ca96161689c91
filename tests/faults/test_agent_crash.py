"""A real agent killed (SIGKILL) while its command runs: restarted on the same state dir it
never runs the command again, and the server ends with a final result for it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.conftest import RealAgent, command, real_agent, wait_final, wait_online
from tests.support import LiveServer, Seeder, login, wait_for

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")


def test_killed_mid_command_is_never_run_again_and_ends_failed(
    server: LiveServer, seeder: Seeder, real_agents: list[RealAgent], tmp_path: Path
) -> None:
    tenant = seeder.tenant()
    agent = real_agent(real_agents, server, seeder, tenant, tmp_path)
    marker = tmp_path / "marker.txt"
    with login(server, tenant) as api:
        # `sh -c` is high risk: let it run without an approver here.
        security = api.get("/api/v1/tenant/security").json()
        api.put("/api/v1/tenant/security", json=security | {"approval_for_high_risk": False})
        wait_online(api, agent.device_id)
        created = api.post(
            f"/api/v1/devices/{agent.device_id}/commands",
            json={
                "type": "shell",
                "payload": {
                    "command": f"sh -c 'echo start >> {marker}; sleep 5; echo end >> {marker}'"
                },
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "queued"
        command_id = created.json()["id"]
        wait_for(lambda: marker.exists() and "start" in marker.read_text(), timeout=15)
        wait_for(lambda: command(api, command_id)["status"] == "running", timeout=10)

        agent.kill()
        # The agent is gone: the command cannot finish on its own.
        wait_for(lambda: not api.get(f"/api/v1/devices/{agent.device_id}").json()["online"])
        assert command(api, command_id)["status"] == "running"

        agent.start()
        done = wait_final(api, command_id, timeout=20)
        assert done["status"] == "failed", done
        assert done["error"] == "agent restarted while the command was running"
        finals = [t["status"] for t in done["transitions"] if t["status"] == "failed"]
        assert finals == ["failed"]
        # The orphaned first run may still finish its sleep; the command never starts again.
        wait_for(lambda: "end" in marker.read_text(), timeout=10)
        assert marker.read_text().split() == ["start", "end"], marker.read_text()
        assert command(api, command_id)["status"] == "failed"  # nothing changed it since
        # On reconnecting the server sent the running command again: the ledger answered.
        assert f"command {command_id} already ran here" in agent.log
