"""`script`: a private temporary file run by its interpreter, parameters kept literal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from steward.agent import run_command
from steward.protocol import CommandStatus, CommandType
from tests.agent.commands_support import dispatch, script_payload

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX interpreters")

SHOW = 'printf "%s|" "$0" "$@"; printf "\\n%s\\n" "$GREETING"; ls -ld "$(dirname "$0")"'


@pytest.mark.parametrize("interpreter", ["sh", "bash"])
async def test_script_gets_args_and_env_literally(interpreter: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    args = ["plain", f"a; touch {marker}", f"$(touch {marker})", "`id`", "two words"]
    payload = script_payload(
        SHOW, interpreter, args=args, env={"GREETING": f"hi $(touch {marker})"}
    )
    result = await run_command(dispatch(CommandType.SCRIPT, payload))
    assert result.status is CommandStatus.SUCCEEDED, result
    first, greeting, listing = result.stdout.splitlines()[:3]
    path, *given = first.split("|")[:-1]
    assert given == args
    assert greeting == f"hi $(touch {marker})"
    assert not marker.exists()
    assert listing.startswith("drwx------")  # the script's directory is private
    assert not Path(path).exists() and not Path(path).parent.exists()  # removed afterwards


async def test_python_script_and_exit_code() -> None:
    body = "import sys\nprint(sys.argv[1:])\nsys.exit(4)\n"
    result = await run_command(
        dispatch(CommandType.SCRIPT, script_payload(body, "python", args=["x;y"]))
    )
    assert result.status is CommandStatus.FAILED
    assert result.exit_code == 4
    assert result.stdout == "['x;y']\n"


async def test_a_body_that_does_not_match_its_hash_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = script_payload(f"touch {marker}")
    payload["body"] = f"touch {marker}; echo tampered"
    result = await run_command(dispatch(CommandType.SCRIPT, payload))
    assert result.status is CommandStatus.FAILED
    assert "sha256" in result.error
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"interpreter": "perl"}, "interpreter"),
        ({"sha256": "abc"}, "sha256"),
        ({"env": {"lower": "x"}}, "env"),
        ({"args": "not a list"}, "args"),
        ({"body": ""}, "body"),
    ],
)
async def test_invalid_script_payloads_are_refused(change: dict[str, object], error: str) -> None:
    payload = {**script_payload("echo hi"), **change}
    result = await run_command(dispatch(CommandType.SCRIPT, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error.startswith("invalid payload:") and error in result.error


async def test_script_timeout_kills_it() -> None:
    result = await run_command(
        dispatch(CommandType.SCRIPT, script_payload("sleep 30"), timeout_s=0.5)
    )
    assert result.status is CommandStatus.TIMED_OUT
