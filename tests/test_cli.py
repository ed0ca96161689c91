"""The `steward` command line, run as a real process against both databases."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from steward.cli import app
from tests.support import run

STEWARD = [sys.executable, "-m", "steward.cli"]


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


@pytest.mark.parametrize(
    "args",
    [[], ["db", "upgrade"], ["serve"], ["tenant", "create"], ["user", "create"], ["pin", "create"]],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = run([*STEWARD, *args, "--help"])
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_tenant_and_group_commands_have_help() -> None:
    runner = CliRunner()
    commands = [
        *(["tenant", name] for name in ("list", "show", "update", "disable", "enable")),
        *(["tenant", name] for name in ("delete", "check")),
        *(["group", name] for name in ("create", "list", "rename", "delete")),
    ]
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_tenant_user_and_pin(env: dict[str, str]) -> None:
    assert run([*STEWARD, "db", "upgrade"], env=env).returncode == 0
    created = run([*STEWARD, "tenant", "create", "school", "--name", "A School"], env=env)
    assert created.returncode == 0, created.stderr
    again = run([*STEWARD, "tenant", "create", "school", "--name", "Again"], env=env)
    assert again.returncode == 1 and "tenant_exists" in again.stderr
    bad = run([*STEWARD, "tenant", "create", "Not A Slug!", "--name", "x"], env=env)
    assert bad.returncode == 1 and "invalid_slug" in bad.stderr

    user = [*STEWARD, "user", "create", "--tenant", "school", "--email", "it@school.example"]
    no_password = run([*user, "--role", "ADMIN"], env=env)
    assert no_password.returncode == 2
    made = run([*user, "--role", "ADMIN"], env=env | {"STEWARD_PASSWORD": "long-enough-pw"})
    assert made.returncode == 0, made.stderr
    from_stdin = run(
        [
            *STEWARD,
            "user",
            "create",
            "--tenant",
            "school",
            "--email",
            "v@school.example",
            "--role",
            "VIEWER",
            "--password-stdin",
        ],
        env=env,
        input="another-long-pw\n",
    )
    assert from_stdin.returncode == 0, from_stdin.stderr
    weak = run(
        [*user[:-1], "w@school.example", "--role", "ADMIN"], env=env | {"STEWARD_PASSWORD": "short"}
    )
    assert weak.returncode == 1 and "weak_password" in weak.stderr
    assert run([*user, "--role", "GOD"], env=env | {"STEWARD_PASSWORD": "x" * 12}).returncode == 2

    pin = run([*STEWARD, "pin", "create", "--tenant", "school", "--ttl", "120"], env=env)
    assert pin.returncode == 0, pin.stderr
    last = pin.stdout.strip().splitlines()[-1]
    assert len(last) == 6 and last.isdigit()
    missing_group = run([*STEWARD, "pin", "create", "--tenant", "school", "--group", "x"], env=env)
    assert missing_group.returncode == 1 and "group_not_found" in missing_group.stderr
    missing_tenant = run([*STEWARD, "pin", "create", "--tenant", "nope"], env=env)
    assert missing_tenant.returncode == 1 and "tenant_not_found" in missing_tenant.stderr


def test_user_admin_and_commands_as_a_user(env: dict[str, str]) -> None:
    assert run([*STEWARD, "db", "upgrade"], env=env).returncode == 0
    assert run([*STEWARD, "tenant", "create", "lab", "--name", "Lab"], env=env).returncode == 0
    password = env | {"STEWARD_PASSWORD": "quiet-lantern-42"}
    for email, role in (("v@lab.example", "VIEWER"), ("e@lab.example", "ENGINEER")):
        user = [*STEWARD, "user", "create", "--tenant", "lab", "--email", email, "--role", role]
        assert run(user, env=password).returncode == 0

    listed = run([*STEWARD, "user", "list", "--tenant", "lab"], env=env)
    assert listed.returncode == 0 and "v@lab.example\tVIEWER\tactive\tno-mfa" in listed.stdout
    for action in ("reset-mfa", "unlock"):
        done = run(
            [*STEWARD, "user", action, "--tenant", "lab", "--email", "e@lab.example"], env=env
        )
        assert done.returncode == 0, done.stderr
    missing = run([*STEWARD, "user", "unlock", "--tenant", "lab", "--email", "x@y.z"], env=env)
    assert missing.returncode == 1 and "user_not_found" in missing.stderr

    # The CLI acts as the user through the same authorisation as the API.
    command = [*STEWARD, "command", "run", "--tenant", "lab", "--device"]
    device = "00000000-0000-0000-0000-000000000001"
    viewer = run([*command, device, "--as", "v@lab.example", "echo hi"], env=env)
    assert viewer.returncode == 1 and "forbidden" in viewer.stderr
    engineer = run([*command, device, "--as", "e@lab.example", "echo hi"], env=env)
    assert engineer.returncode == 1 and "device_not_found" in engineer.stderr
    assert run([*command, "not-an-id", "--as", "e@lab.example", "x"], env=env).returncode == 2
