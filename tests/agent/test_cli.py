from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from steward.agent import AgentState, save_state
from steward.agent.cli import app

MakeState = Callable[..., AgentState]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The CLI configures the root logger for the (captured, then closed) stderr of each run.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _agent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "steward.agent", *args]


@pytest.mark.parametrize("command", [[], ["enroll"], ["run"], ["status"]])
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_run_when_not_enrolled_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--state-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "not enrolled" in result.output


def test_run_when_not_enrolled_exits_2_as_a_process(tmp_path: Path) -> None:
    completed = subprocess.run(
        _agent_command("run", "--state-dir", str(tmp_path / "none")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "not enrolled" in completed.stderr


def test_status_never_shows_the_secret(state_dir: Path, make_state: MakeState) -> None:
    save_state(state_dir, make_state(agent_secret="top-secret-value"))
    result = runner.invoke(app, ["status", "--state-dir", str(state_dir)])
    assert result.exit_code == 0
    assert "device-1" in result.output and "agent-1" in result.output
    assert "top-secret-value" not in result.output

    as_json = runner.invoke(app, ["status", "--json", "--state-dir", str(state_dir)])
    info = json.loads(as_json.stdout)
    assert info["device_id"] == "device-1" and "agent_secret" not in info


def test_status_when_not_enrolled_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2


@pytest.mark.parametrize("server_url", ["not-a-url", "http://127.0.0.1:9"])
def test_failed_enrollment_exits_1(tmp_path: Path, server_url: str) -> None:
    result = runner.invoke(
        app, ["enroll", "--server", server_url, "--pin", "123", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "enrollment failed" in result.output
    assert not (tmp_path / "state.json").exists()


@pytest.mark.skipif(os.name != "posix", reason="sends SIGTERM")
async def test_run_stops_cleanly_on_sigterm(
    fake_server: Any, state_dir: Path, make_state: MakeState
) -> None:
    save_state(state_dir, make_state(fake_server.url))
    process = await asyncio.create_subprocess_exec(
        *_agent_command("run", "--state-dir", str(state_dir), "--transport", "ws"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await fake_server.expect("heartbeat.full", timeout=30)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            stderr = await process.stderr.read() if process.stderr else b""
            assert await process.wait() == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert fake_server.close_codes == [1000]
    assert b"connected over WebSocket" in stderr
