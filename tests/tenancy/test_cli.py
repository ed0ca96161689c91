"""`steward tenant ...` and `steward group ...`, run as a real process against both databases.
The rules behind them are tested at the service level; this checks the commands' plumbing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support import run
from tests.test_cli import STEWARD


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


def test_tenant_profile_groups_check_and_delete(env: dict[str, str]) -> None:
    def steward(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = run([*STEWARD, *args], env=env, input=stdin)
        return result.returncode, result.stdout, result.stderr

    code, stdout, _ = steward("tenant", "create", "school", "--name", "A School")
    assert code == 0
    tenant_id = str(uuid.UUID(stdout.rsplit("(", 1)[1].rstrip(")\n")))  # "created (<id>)"
    code, _, stderr = steward(
        "tenant", "update", "school", "--brn", "123-45-67890", "--contact-email", "it@school.kr",
        "--timezone", "Asia/Seoul", "--notes", "VIP",
    )  # fmt: skip
    assert code == 0, stderr
    code, stdout, _ = steward("tenant", "show", "school")
    assert code == 0 and "123-45-67890" in stdout and "it@school.kr" in stdout
    assert "Asia/Seoul" in stdout and "VIP" in stdout

    assert steward("group", "create", "lab", "--tenant", "school")[0] == 0
    assert steward("group", "rename", "lab", "science", "--tenant", "school")[0] == 0
    code, _, stderr = steward("group", "delete", "all", "--tenant", "school")
    assert code == 1 and "error (default_group):" in stderr
    code, stdout, _ = steward("group", "list", "--tenant", "school")
    assert code == 0 and [line.split() for line in stdout.splitlines()] == [
        ["GROUP", "DEVICES"],
        ["all", "0"],
        ["science", "0"],
    ]
    code, stdout, _ = steward("tenant", "list")
    assert code == 0 and ["school", "A", "School", "active", "0", "0"] in [
        line.split() for line in stdout.splitlines()
    ]

    orphan = Path(env["STEWARD_DATA_DIR"]) / "tenants" / "gone"
    orphan.mkdir(parents=True)
    files = Path(env["STEWARD_DATA_DIR"]) / "tenants" / tenant_id
    files.mkdir()
    code, stdout, _ = steward("tenant", "check")
    assert code == 1 and "no_active_admin" in stdout and "orphan_directory" in stdout
    assert "gone" in stdout

    code, _, stderr = steward("tenant", "delete", "school", stdin="schoo\n")
    assert code == 1 and files.is_dir()
    code, stdout, stderr = steward("tenant", "delete", "school", stdin="school\n")
    assert code == 0 and "tenant school deleted" in stdout, stderr
    assert not files.exists() and orphan.is_dir()
    code, _, stderr = steward("group", "list", "--tenant", "school")
    assert code == 1 and "error (tenant_not_found):" in stderr
