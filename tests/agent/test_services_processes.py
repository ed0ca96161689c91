"""Services through a real SysV init script (root only, removed afterwards) and processes
through real psutil on processes the test spawns."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from steward.agent import run_command
from steward.agent.commands._processes import (
    TERMINATE_GRACE_S,
    KillRefused,
    find_targets,
    protected_pids,
)
from steward.agent.commands._services import INIT_D, service_manager
from steward.protocol import CommandStatus, CommandType
from steward.protocol.payloads import ProcessKillPayload
from tests.agent.commands_support import dispatch, gone, soon_gone

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX agent behaviour")

INIT_SCRIPT = """#!/bin/sh
# A stand-in service for Steward's tests: "running" while its state file exists.
STATE={state}
case "$1" in
  start) echo "starting"; touch "$STATE" ;;
  stop) echo "stopping"; rm -f "$STATE" ;;
  restart) rm -f "$STATE"; touch "$STATE"; echo restarted ;;
  status) if [ -e "$STATE" ]; then echo "is running"; exit 0; fi
          echo "is not running"; exit 3 ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def sysv_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if service_manager() != "sysv":
        pytest.skip("systemd runs this machine: the SysV test service would not be used")
    if os.geteuid() != 0 or not os.access(INIT_D, os.W_OK):
        pytest.skip("installing a test service in /etc/init.d needs root")
    name = f"steward-test-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "running"
    script = INIT_D / name
    script.write_text(INIT_SCRIPT.format(state=state))
    script.chmod(0o755)
    try:
        yield name, state
    finally:
        script.unlink()


async def _service(verb: str, name: str) -> tuple[CommandStatus, str, str]:
    result = await run_command(dispatch(f"service.{verb}", {"name": name}))
    return result.status, result.error, result.stdout


async def test_sysv_service_start_status_stop(sysv_service: tuple[str, Path]) -> None:
    name, state = sysv_service
    assert await _service("status", name) == (
        CommandStatus.SUCCEEDED,
        f"{name}: stopped",
        "state: stopped\nis not running\n",
    )
    status, error, stdout = await _service("start", name)
    assert (status, error, stdout) == (CommandStatus.SUCCEEDED, f"start {name}: done", "starting\n")
    assert state.exists()
    assert (await _service("status", name))[1] == f"{name}: running"
    assert (await _service("restart", name))[:2] == (
        CommandStatus.SUCCEEDED,
        f"restart {name}: done",
    )
    assert (await _service("stop", name))[0] is CommandStatus.SUCCEEDED
    assert not state.exists()


async def test_a_missing_service_is_a_clear_failure() -> None:
    for verb in ("status", "start"):
        status, error, _stdout = await _service(verb, "steward-no-such-service")
        assert (status, error) == (
            CommandStatus.FAILED,
            "service not found: steward-no-such-service",
        )


@pytest.mark.parametrize("name", ["ssh; reboot", "-h", "a b", "../../bin/sh", ""])
async def test_invalid_service_names_are_refused(name: str) -> None:
    status, error, _stdout = await _service("stop", name)
    assert status is CommandStatus.FAILED and error.startswith("invalid payload:")


# ---- processes ---------------------------------------------------------------------------


def _spawn_tree(tmp_path: Path) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A shell with two sleeping children; returns it and the children's pids."""
    pids = tmp_path / f"pids-{uuid.uuid4().hex[:6]}"
    script = f"sleep 300 & echo $! >> {pids}; sleep 301 & echo $! >> {pids}; wait"
    parent = subprocess.Popen(["/bin/sh", "-c", script])
    for _ in range(100):
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        subprocess.run(["sleep", "0.05"])
    return parent, [int(pid) for pid in pids.read_text().split()]


async def test_process_list_shows_a_spawned_process() -> None:
    marker = f"0.{uuid.uuid4().int % 10**8:08d}"  # sleep adds up its arguments
    child = subprocess.Popen(["sleep", "300", marker])
    try:
        result = await run_command(dispatch(CommandType.PROCESS_LIST, {"filter": "SLEEP"}))
        assert result.status is CommandStatus.SUCCEEDED
        header, *rows = result.stdout.splitlines()
        assert header.split() == ["PID", "USER", "CPU%", "MEMORY", "NAME", "COMMAND"]
        mine = [row for row in rows if row.split()[0] == str(child.pid)]
        assert len(mine) == 1 and mine[0].endswith(f"sleep 300 {marker}")
        assert all(" sleep " in row for row in rows)  # filtered by name
        everything = await run_command(dispatch(CommandType.PROCESS_LIST, {}))
        assert len(everything.stdout.splitlines()) > len(rows) + 1
    finally:
        child.kill()
        child.wait()


async def test_kill_a_tree_children_first(tmp_path: Path) -> None:
    parent, children = _spawn_tree(tmp_path)
    try:
        payload = {"pid": parent.pid, "tree": True}
        result = await run_command(dispatch(CommandType.PROCESS_KILL, payload))
        assert result.status is CommandStatus.SUCCEEDED, result
        lines = result.stdout.splitlines()
        assert lines[-1] == f"killed {parent.pid} (sh)"
        assert {line.split()[1] for line in lines[:-1]} == {str(pid) for pid in children}
        assert result.error == "killed 3 processes"
        parent.wait(timeout=5)
        for pid in children:
            assert await soon_gone(pid)
    finally:
        parent.kill()
        parent.wait()


async def test_kill_without_tree_leaves_the_children(tmp_path: Path) -> None:
    parent, children = _spawn_tree(tmp_path)
    try:
        payload = {"pid": parent.pid, "tree": False, "force": True}
        result = await run_command(dispatch(CommandType.PROCESS_KILL, payload))
        assert result.stdout == f"killed {parent.pid} (sh)\n"
        parent.wait(timeout=5)
        assert not any(gone(pid) for pid in children)
    finally:
        for pid in children:
            psutil.Process(pid).kill()


async def test_kill_by_exact_name(tmp_path: Path) -> None:
    copy = tmp_path / f"stw{uuid.uuid4().hex[:8]}"  # a process name nobody else has
    copy.write_bytes(Path("/bin/sleep").read_bytes())
    copy.chmod(0o755)
    sleepers = [subprocess.Popen([str(copy), "300"]) for _ in range(2)]
    try:
        payload = {"name": copy.name}
        result = await run_command(dispatch(CommandType.PROCESS_KILL, payload))
        assert result.status is CommandStatus.SUCCEEDED
        assert result.error == "killed 2 processes"
        for sleeper in sleepers:  # (psutil reaped them: their exit status is gone)
            assert await soon_gone(sleeper.pid)
        missing = await run_command(dispatch(CommandType.PROCESS_KILL, payload))
        assert (missing.status, missing.error) == (
            CommandStatus.FAILED,
            f"no process named {copy.name}",
        )
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


async def test_term_then_kill_for_a_process_that_ignores_sigterm() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print(flush=True)\n"
            "time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None
    await asyncio.to_thread(stubborn.stdout.readline)  # SIGTERM is ignored from now on
    started = time.monotonic()
    result = await run_command(dispatch(CommandType.PROCESS_KILL, {"pid": stubborn.pid}))
    assert result.status is CommandStatus.SUCCEEDED
    assert await soon_gone(stubborn.pid)
    stubborn.wait()
    stubborn.stdout.close()
    assert time.monotonic() - started >= TERMINATE_GRACE_S  # SIGKILL after the grace period


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("init", "refusing to kill pid 1"),
        ("agent", "refusing to kill pid {pid}"),
        ("agent's parent", "refusing to kill pid {pid}"),
        ("no such pid", "no such process: pid {pid}"),
        ("no such name", "no process named steward-no-such-process"),
    ],
)
async def test_kill_refusals(target: str, error: str) -> None:
    pids = {
        "init": 1,
        "agent": os.getpid(),
        "agent's parent": os.getppid(),
        "no such pid": 2**31 - 2,
    }
    payload: dict[str, object] = (
        {"pid": pids[target]} if target in pids else {"name": "steward-no-such-process"}
    )
    result = await run_command(dispatch(CommandType.PROCESS_KILL, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error.startswith(error.format(pid=pids.get(target)))
    assert not gone(os.getpid()) and not gone(os.getppid())


def test_a_name_never_targets_the_agent_or_its_ancestors() -> None:
    # Only looks the targets up: killing every process called "python" here would be rude.
    own = psutil.Process().name()
    try:
        targets = {process.pid for process in find_targets(ProcessKillPayload(name=own))}
    except KillRefused as refused:
        assert "it is init or the agent" in str(refused)
        return
    assert not targets & protected_pids()
    assert {os.getpid(), os.getppid()} <= protected_pids()


@pytest.mark.parametrize(
    "payload",
    [{}, {"pid": 5, "name": "x"}, {"pid": 0}, {"pid": -3}, {"name": "-9"}, {"name": "a;b"}],
)
async def test_invalid_kill_payloads_are_refused(payload: dict[str, object]) -> None:
    result = await run_command(dispatch(CommandType.PROCESS_KILL, payload))
    assert result.status is CommandStatus.FAILED and result.error.startswith("invalid payload:")
