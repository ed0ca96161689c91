"""The same command delivered twice: over the poll resend path to an agent that never
acknowledged it, and to a real agent while it runs. Executed once, the result reported again,
one result stored, one final state in its history."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from steward.server.commands.models import Command
from steward.server.gateway.hub import INLINE_PAYLOAD_BYTES
from tests.faults.conftest import (
    LONG_AGO,
    RealAgent,
    audit,
    change_commands,
    command,
    real_agent,
    sim_fleet,
    wait_final,
    wait_online,
)
from tests.support import LiveServer, Seeder, login, wait_for

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")
FINAL_STATES = {"succeeded", "failed", "timed_out", "cancelled"}


def test_an_unacknowledged_poll_dispatch_is_sent_again_and_stored_once(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    (sim,) = sim_fleet(server, seeder, tenant, 1)
    with login(server, tenant) as api:
        command_id = api.post(
            f"/api/v1/devices/{sim.device_id}/commands",
            json={"type": "shell", "payload": {"command": "echo once"}},
        ).json()["id"]
        assert sim.take() == [command_id]  # the answer "was lost": no ack, no result
        assert sim.take() == [] and sim.redispatched == []  # not again right away
        # The resend interval passes without an ack: the next poll carries it again.
        moved = change_commands(
            server.settings, Command.id == uuid.UUID(command_id), sent_at=LONG_AGO
        )
        assert moved == 1
        assert sim.take() == [] and sim.redispatched == [command_id]  # not run again
        assert sim.ran == [command_id]
        sim.report()
        # The same result arrives once more (a lost poll answer on the way back), changed.
        sim.results[command_id] = sim.results[command_id] | {"stdout": "a second run?"}
        sim.unreported = [command_id]
        sim.report()
        done = wait_final(api, command_id)
        assert (done["status"], done["stdout"]) == ("succeeded", f"ran {command_id}")
        states = [t["status"] for t in done["transitions"]]
        assert [s for s in states if s in FINAL_STATES] == ["succeeded"], states
        assert states.count("sent") == 2, states
        wait_for(lambda: audit(api, "command.finished"))  # audited after the commit
        finished = [e for e in audit(api, "command.finished") if e["target"].endswith(command_id)]
        assert len(finished) == 1, finished


def test_a_real_agent_given_a_running_command_again_runs_it_once(
    server: LiveServer, seeder: Seeder, real_agents: list[RealAgent], tmp_path: Path
) -> None:
    tenant = seeder.tenant()
    agent = real_agent(real_agents, server, seeder, tenant, tmp_path)
    marker = tmp_path / "marker.txt"
    with login(server, tenant) as api:
        wait_online(api, agent.device_id)
        slow = api.post(
            f"/api/v1/devices/{agent.device_id}/commands",
            json={"type": "shell", "payload": {"command": f"echo run >> {marker}; sleep 2"}},
        ).json()["id"]
        wait_for(lambda: marker.exists(), timeout=10)
        wait_for(lambda: command(api, slow)["status"] == "running")
        # Sent long ago as far as the server knows: the next wake-up sends it again. (A large
        # payload travels as a wake-up, which reads what the device should have; small ones
        # go straight to the connection.)
        change_commands(server.settings, Command.id == uuid.UUID(slow), sent_at=LONG_AGO)
        large = "echo other # " + "x" * (INLINE_PAYLOAD_BYTES + 1)
        other = api.post(
            f"/api/v1/devices/{agent.device_id}/commands",
            json={"type": "shell", "payload": {"command": large}},
        ).json()["id"]
        assert wait_final(api, other)["stdout"] == "other\n"
        done = wait_final(api, slow)
        assert done["status"] == "succeeded", done
        states = [t["status"] for t in done["transitions"]]
        again = [t for t in done["transitions"] if t["note"].startswith("sent again")]
        assert states.count("sent") == 1 and len(again) == 1, states  # delivered twice ...
        assert [s for s in states if s in FINAL_STATES] == ["succeeded"], states
    assert marker.read_text() == "run\n"  # ... and ran once
