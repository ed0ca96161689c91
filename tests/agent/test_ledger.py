from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from steward.agent import Channel, Collector, Ledger, StateError
from steward.agent._ledger import INTERRUPTED_ERROR
from steward.protocol import CommandDispatch, CommandResult, CommandStatus

MakeDispatch = Callable[..., CommandDispatch]


def _result(command_id: str, stdout: str = "") -> CommandResult:
    return CommandResult(
        command_id=command_id, status=CommandStatus.SUCCEEDED, exit_code=0, stdout=stdout
    )


def test_a_command_is_started_only_once(state_dir: Path) -> None:
    ledger = Ledger.in_dir(state_dir)
    assert ledger.start("c-1")
    assert not ledger.start("c-1")
    ledger.finish(_result("c-1"))
    assert not ledger.start("c-1")


def test_ledger_survives_a_reload(state_dir: Path) -> None:
    ledger = Ledger.in_dir(state_dir)
    ledger.start("c-1")
    ledger.finish(_result("c-1", stdout="out"))
    ledger.mark_delivered(["c-1"])

    reloaded = Ledger.in_dir(state_dir)
    entry = reloaded.get("c-1")
    assert entry is not None and entry.delivered
    assert entry.result == _result("c-1", stdout="out")
    assert not reloaded.start("c-1")
    assert reloaded.undelivered() == []


def test_a_command_interrupted_by_a_restart_is_reported_failed(state_dir: Path) -> None:
    Ledger.in_dir(state_dir).start("c-1")  # ... and the agent died

    reloaded = Ledger.in_dir(state_dir)
    [result] = reloaded.undelivered()
    assert result.command_id == "c-1"
    assert result.status is CommandStatus.FAILED
    assert result.error == INTERRUPTED_ERROR
    assert not reloaded.start("c-1")
    # The conversion is written down: a second restart reports the same, once.
    assert Ledger.in_dir(state_dir).undelivered() == [result]


def test_ledger_is_bounded(state_dir: Path) -> None:
    ledger = Ledger.in_dir(state_dir, max_entries=10)
    for number in range(15):
        ledger.start(f"c-{number}")
        ledger.finish(_result(f"c-{number}"))
    assert len(ledger) == 10
    assert "c-4" not in ledger and "c-5" in ledger and "c-14" in ledger
    assert len(Ledger.in_dir(state_dir)) == 10


def test_old_delivered_output_is_dropped_first(state_dir: Path) -> None:
    ledger = Ledger.in_dir(state_dir, max_output_chars=10)
    for command_id in ("old", "new"):
        ledger.start(command_id)
        ledger.finish(_result(command_id, stdout="x" * 8))
    ledger.mark_delivered(["old", "new"])
    old, new = ledger.get("old"), ledger.get("new")
    assert old is not None and old.result is not None and new is not None
    assert old.result.stdout == "" and old.result.stdout_truncated
    assert new.result == _result("new", stdout="x" * 8)


def test_undelivered_output_is_always_kept(state_dir: Path) -> None:
    ledger = Ledger.in_dir(state_dir, max_output_chars=10)
    ledger.finish(_result("c-1", stdout="y" * 100))
    assert ledger.undelivered() == [_result("c-1", stdout="y" * 100)]


def test_ledger_file_is_private_and_rewritten_atomically(state_dir: Path) -> None:
    ledger = Ledger.in_dir(state_dir)
    ledger.start("c-1")
    first_inode = ledger.path.stat().st_ino
    ledger.finish(_result("c-1"))
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    assert ledger.path.stat().st_ino != first_inode  # replaced, not rewritten in place
    assert sorted(p.name for p in state_dir.iterdir()) == ["ledger.json"]


def test_corrupt_ledger_is_a_state_error(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "ledger.json").write_text("{not json")
    with pytest.raises(StateError):
        Ledger.in_dir(state_dir)


# ---- exactly-once through the channel (real executor, real subprocesses) -----------------


@pytest.fixture
def collector() -> Collector:
    return Collector()


async def _settle(channel: Channel) -> None:
    for _ in range(200):
        if not channel.running_commands:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("commands still running")


@pytest.mark.skipif(os.name != "posix", reason="uses a POSIX shell command")
async def test_a_repeated_dispatch_does_not_run_again(
    state_dir: Path, tmp_path: Path, collector: Collector, make_dispatch: MakeDispatch
) -> None:
    runs = tmp_path / "runs.txt"
    dispatch = make_dispatch(f"echo ran >> '{runs}'")
    channel = Channel(Ledger.in_dir(state_dir), collector)
    channel.handle(dispatch)
    channel.handle(dispatch)  # while it runs
    await _settle(channel)
    channel.handle(dispatch)  # after it finished
    await _settle(channel)
    assert runs.read_text() == "ran\n"
    results = [m for m in channel.pending() if isinstance(m, CommandResult)]
    assert [r.command_id for r in results] == [dispatch.command_id]
    assert results[0].status is CommandStatus.SUCCEEDED

    # A restarted agent neither runs it again nor forgets to send its result.
    restarted = Channel(Ledger.in_dir(state_dir), collector)
    assert restarted.pending() == results
    await restarted.delivered(restarted.pending())
    restarted.handle(dispatch)
    await _settle(restarted)
    assert runs.read_text() == "ran\n"
    assert restarted.pending() == results  # re-sent from the ledger


@pytest.mark.skipif(os.name != "posix", reason="uses a POSIX shell command")
async def test_stopping_the_agent_kills_and_records_running_commands(
    state_dir: Path, collector: Collector, make_dispatch: MakeDispatch
) -> None:
    dispatch = make_dispatch("sleep 300")
    channel = Channel(Ledger.in_dir(state_dir), collector)
    channel.handle(dispatch)
    await asyncio.sleep(0.5)
    assert channel.running_commands == [dispatch.command_id]
    await channel.aclose()
    [result] = Ledger.in_dir(state_dir).undelivered()
    assert result.command_id == dispatch.command_id
    assert result.status is CommandStatus.FAILED
    assert "stopped" in result.error
