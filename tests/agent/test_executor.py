from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from steward.agent import run_command
from steward.agent._executor import RESULT_BUDGET_BYTES, fit_result
from steward.agent.commands._shell import shell_argv
from steward.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_OUTPUT_BYTES,
    CommandDispatch,
    CommandResult,
    CommandStatus,
    CommandType,
    dump_message,
)
from steward.protocol.payloads import ShellPayload

MakeDispatch = Callable[..., CommandDispatch]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _soon_gone(pid: int) -> bool:
    # SIGKILL is not instantaneous; give the kernel a moment.
    for _ in range(50):
        if _gone(pid):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_exit_zero_succeeds_with_stdout(make_dispatch: MakeDispatch) -> None:
    result = await run_command(make_dispatch("echo hello"))
    assert result.status is CommandStatus.SUCCEEDED
    assert result.exit_code == 0
    assert result.stdout == "hello\n"
    assert result.stderr == ""
    assert result.error == ""


async def test_nonzero_exit_fails_and_keeps_stderr(make_dispatch: MakeDispatch) -> None:
    result = await run_command(make_dispatch("echo oops >&2; exit 3"))
    assert result.status is CommandStatus.FAILED
    assert result.exit_code == 3
    assert result.stderr == "oops\n"
    assert "3" in result.error


async def test_bash_interpreter(make_dispatch: MakeDispatch) -> None:
    result = await run_command(make_dispatch('echo "${BASH_VERSION:+bash}"', interpreter="bash"))
    assert result.stdout == "bash\n"


async def test_timeout_kills_the_whole_process_group(make_dispatch: MakeDispatch) -> None:
    # The shell starts a grandchild in the background and prints its pid.
    dispatch = make_dispatch("sleep 300 & echo $!; sleep 300", timeout_s=1)
    started = time.monotonic()
    result = await run_command(dispatch)
    assert time.monotonic() - started < 10
    assert result.status is CommandStatus.TIMED_OUT
    assert result.exit_code is None
    assert "timed out" in result.error
    grandchild = int(result.stdout.split()[0])
    assert await _soon_gone(grandchild)


async def test_background_child_holding_the_output_does_not_hang_the_command(
    make_dispatch: MakeDispatch,
) -> None:
    started = time.monotonic()
    result = await run_command(make_dispatch("sleep 300 & echo started", timeout_s=60))
    assert time.monotonic() - started < 10
    assert result.status is CommandStatus.SUCCEEDED
    assert result.stdout == "started\n"


async def test_output_is_capped_and_marked_truncated(make_dispatch: MakeDispatch) -> None:
    # 5 MB on stdout: far beyond the cap, the child must still finish (no blocked pipe).
    command = "head -c 5000000 /dev/zero | tr '\\0' a; echo small >&2"
    result = await run_command(make_dispatch(command))
    assert result.status is CommandStatus.SUCCEEDED
    assert len(result.stdout) == MAX_OUTPUT_BYTES
    assert set(result.stdout) == {"a"}
    assert result.stdout_truncated
    assert result.stderr == "small\n"
    assert not result.stderr_truncated


async def test_output_at_the_cap_is_not_truncated(make_dispatch: MakeDispatch) -> None:
    command = f"head -c {MAX_OUTPUT_BYTES} /dev/zero | tr '\\0' b"
    result = await run_command(make_dispatch(command))
    assert len(result.stdout) == MAX_OUTPUT_BYTES
    assert not result.stdout_truncated


async def test_unicode_and_invalid_utf8_are_decoded(make_dispatch: MakeDispatch) -> None:
    result = await run_command(make_dispatch("printf 'h\\303\\251llo \\342\\234\\223 \\377'"))
    assert result.stdout == "héllo ✓ \ufffd"


async def test_worst_case_output_still_fits_in_one_frame(make_dispatch: MakeDispatch) -> None:
    # Control characters grow six-fold in JSON; the result must still fit in one frame.
    command = (
        f"head -c {MAX_OUTPUT_BYTES} /dev/zero | tr '\\0' '\\001'; "
        f"head -c {MAX_OUTPUT_BYTES} /dev/zero | tr '\\0' '\\002' >&2"
    )
    result = await run_command(make_dispatch(command))
    size = len(dump_message(result).encode("utf-8"))
    assert size <= RESULT_BUDGET_BYTES < MAX_MESSAGE_BYTES
    assert result.stdout_truncated and result.stderr_truncated
    assert result.stdout and result.stderr


async def test_commands_run_concurrently(make_dispatch: MakeDispatch) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(run_command(make_dispatch("sleep 1")) for _ in range(4)))
    assert all(result.status is CommandStatus.SUCCEEDED for result in results)
    assert time.monotonic() - started < 3.5


async def test_cancelling_kills_the_command(make_dispatch: MakeDispatch, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = f"echo $$ > '{pids}'; sleep 300 & echo $! >> '{pids}'; wait"
    task = asyncio.create_task(run_command(make_dispatch(command)))
    async with asyncio.timeout(10):
        while len(pids.read_text().split() if pids.exists() else []) < 2:
            await asyncio.sleep(0.05)
    shell, grandchild = (int(pid) for pid in pids.read_text().split())
    assert not _gone(shell) and not _gone(grandchild)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _soon_gone(shell) and await _soon_gone(grandchild)


async def test_unknown_command_type_fails_without_running() -> None:
    dispatch = CommandDispatch.model_construct(
        command_id="c-1", command_type="reboot", payload={}, timeout_s=5
    )
    result = await run_command(dispatch)
    assert result.status is CommandStatus.FAILED
    assert "unsupported command type" in result.error


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({}, "invalid payload: command: Field required"),
        ({"command": ""}, "invalid payload: command"),
        ({"command": 42}, "invalid payload: command"),
        ({"command": "true", "interpreter": "perl"}, "invalid payload: interpreter"),
        ({"command": "true", "extra": 1}, "invalid payload: extra"),
    ],
)
async def test_invalid_payload_fails(payload: dict[str, object], error: str) -> None:
    dispatch = CommandDispatch(
        command_id="c-1", command_type=CommandType.SHELL, payload=payload, timeout_s=5
    )
    result = await run_command(dispatch)
    assert result.status is CommandStatus.FAILED
    assert error in result.error


async def test_missing_interpreter_fails(make_dispatch: MakeDispatch) -> None:
    dispatch = make_dispatch("Get-Date", interpreter="powershell")
    if shell_argv(ShellPayload.model_validate(dispatch.payload))[0] != "pwsh":
        pytest.skip("PowerShell is installed here")
    result = await run_command(dispatch)
    assert result.status is CommandStatus.FAILED
    assert "cannot start" in result.error


def test_shell_argv_is_explicit() -> None:
    assert shell_argv(ShellPayload(command="ls -l")) == ["/bin/sh", "-c", "ls -l"]
    cmd = ShellPayload(command="dir", interpreter="cmd")
    assert shell_argv(cmd)[1:] == ["/d", "/c", "dir"]


def test_fit_result_leaves_small_results_alone() -> None:
    result = CommandResult(command_id="c", status=CommandStatus.SUCCEEDED, stdout="x")
    assert fit_result(result) is result
