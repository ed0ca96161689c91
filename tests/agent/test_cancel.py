"""`command.cancel`: a running command is killed with its tree and reported `cancelled`; one
not yet dispatched is recorded so that it never runs; a finished one is answered again."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from steward.agent import Ledger, run_command
from steward.protocol import CommandCancel, CommandDispatch, CommandStatus, CommandType
from tests.agent.commands_support import dispatch, soon_gone

MakeDispatch = Callable[..., CommandDispatch]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")


async def _pids(path: Path, count: int) -> list[int]:
    async with asyncio.timeout(10):
        while len(path.read_text().split() if path.exists() else []) < count:
            await asyncio.sleep(0.05)
    return [int(pid) for pid in path.read_text().split()]


async def test_cancel_event_kills_the_tree_and_keeps_the_output(
    make_dispatch: MakeDispatch, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    command = f"echo started; echo $$ > '{pids}'; sleep 30 & echo $! >> '{pids}'; wait"
    cancel = asyncio.Event()
    task = asyncio.create_task(run_command(make_dispatch(command), cancel=cancel))
    shell, child = await _pids(pids, 2)
    cancel.set()
    result = await asyncio.wait_for(task, 5)
    assert result.status is CommandStatus.CANCELLED
    assert result.error == "cancelled" and result.exit_code is None
    assert result.stdout == "started\n"
    assert await soon_gone(shell) and await soon_gone(child)


async def test_cancel_stops_a_command_that_runs_no_program() -> None:
    # process.list samples cpu% for half a second in a thread; the cancel does not wait.
    cancel = asyncio.Event()
    task = asyncio.create_task(run_command(dispatch(CommandType.PROCESS_LIST, {}), cancel=cancel))
    await asyncio.sleep(0.1)
    cancel.set()
    result = await asyncio.wait_for(task, 0.3)
    assert result.status is CommandStatus.CANCELLED and result.stdout == ""


async def test_already_cancelled_does_not_start(
    tmp_path: Path, make_dispatch: MakeDispatch
) -> None:
    marker = tmp_path / "ran"
    cancel = asyncio.Event()
    cancel.set()
    result = await run_command(make_dispatch(f"touch '{marker}'"), cancel=cancel)
    assert result.status is CommandStatus.CANCELLED
    assert not marker.exists()


# ---- through the channel -------------------------------------------------------------------


async def test_cancel_a_running_command(
    fake_server: Any,
    start_agent: Any,
    make_state: Any,
    make_dispatch: MakeDispatch,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    pids, runs = tmp_path / "pids", tmp_path / "runs"
    agent, _task = start_agent(make_state(fake_server.url), transport="ws")
    await fake_server.expect("hello")
    command = make_dispatch(
        f"echo ran >> '{runs}'; echo $$ > '{pids}'; sleep 30 & echo $! >> '{pids}'; wait",
        timeout_s=60,
    )
    await fake_server.send(command)
    await fake_server.expect("command.ack")
    shell, sleeper = await _pids(pids, 2)
    await fake_server.send(CommandCancel(command_id=command.command_id))
    result = await fake_server.expect("command.result", timeout=5)
    assert (result["command_id"], result["status"], result["error"]) == (
        command.command_id,
        "cancelled",
        "cancelled",
    )
    assert await soon_gone(shell) and await soon_gone(sleeper)
    assert agent.channel.running_commands == []
    entry = Ledger.in_dir(state_dir).get(command.command_id)
    assert entry is not None and entry.result is not None
    assert entry.result.status is CommandStatus.CANCELLED
    # Dispatched again, it is not run again: the recorded result is sent.
    await fake_server.send(command)
    again = await fake_server.expect("command.result")
    assert again["status"] == "cancelled"
    assert runs.read_text() == "ran\n"


async def test_cancel_before_dispatch_means_it_never_runs(
    fake_server: Any,
    start_agent: Any,
    make_state: Any,
    make_dispatch: MakeDispatch,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    start_agent(make_state(fake_server.url), transport="ws")
    await fake_server.expect("hello")
    command = make_dispatch(f"touch '{marker}'")
    await fake_server.send(CommandCancel(command_id=command.command_id))
    result = await fake_server.expect("command.result")
    assert (result["command_id"], result["status"]) == (command.command_id, "cancelled")
    await fake_server.send(command)
    again = await fake_server.expect("command.result")
    assert (again["command_id"], again["status"]) == (command.command_id, "cancelled")
    await asyncio.sleep(0.3)
    assert not marker.exists()
    assert not [m for m in fake_server.drain() if m["type"] == "command.ack"]


async def test_cancel_after_the_end_sends_the_result_again(
    fake_server: Any, start_agent: Any, make_state: Any, make_dispatch: MakeDispatch
) -> None:
    start_agent(make_state(fake_server.url), transport="ws")
    await fake_server.expect("hello")
    command = make_dispatch("echo done")
    await fake_server.send(command)
    first = await fake_server.expect("command.result")
    await fake_server.send(CommandCancel(command_id=command.command_id))
    again = await fake_server.expect("command.result")
    assert again == first and first["status"] == "succeeded"


async def test_cancel_survives_a_restart(
    fake_server: Any, start_agent: Any, make_state: Any, make_dispatch: MakeDispatch, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    agent, task = start_agent(make_state(fake_server.url), transport="ws")
    await fake_server.expect("hello")
    command = make_dispatch(f"touch '{marker}'")
    await fake_server.send(CommandCancel(command_id=command.command_id))
    await fake_server.expect("command.result")
    agent.stop()
    await asyncio.wait_for(task, 10)
    start_agent(make_state(fake_server.url), transport="ws")  # same state directory
    await fake_server.expect("hello")
    await fake_server.send(command)
    result = await fake_server.expect("command.result")
    assert result["status"] == "cancelled"
    await asyncio.sleep(0.3)
    assert not marker.exists()


async def test_no_later_step_starts_once_cancelled(tmp_path: Path) -> None:
    from steward.agent._executor import CommandContext

    marker = tmp_path / "step-two"
    context = CommandContext("c-1", 10)
    first = await context.run(["true"])
    assert first.ok
    context.cancel.set()
    second = await context.run(["touch", str(marker)])
    assert second.cancelled and not second.ok and not marker.exists()
    late = CommandContext("c-2", 0.2)
    await asyncio.sleep(0.3)
    assert (await late.run(["touch", str(marker)])).timed_out and not marker.exists()
