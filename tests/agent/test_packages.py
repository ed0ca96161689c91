"""Package commands: argv per manager, dry runs through the real apt-get, outcomes parsed from
the real tool's messages, payloads that could smuggle options refused, and (as root, with
CI=true or STEWARD_TEST_REAL_PACKAGES=1) a real install, list and removal of `hello`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from steward.agent import run_command
from steward.agent.commands._packages import (
    ManagerUnavailable,
    change_plan,
    choose_manager,
    list_plan,
)
from steward.protocol import CommandStatus, CommandType
from steward.protocol.payloads import PackagePayload
from tests.agent.commands_support import dispatch

IN_CI = os.environ.get("CI") == "true"
HAS_APT = shutil.which("apt-get") is not None
IS_ROOT = os.name == "posix" and os.geteuid() == 0
REAL_PACKAGES = IS_ROOT and (IN_CI or os.environ.get("STEWARD_TEST_REAL_PACKAGES") == "1")

needs_apt = pytest.mark.skipif(
    not HAS_APT and not IN_CI, reason="apt-get is not installed here (a Debian/Ubuntu test)"
)


@needs_apt
async def test_dry_run_install_with_apt() -> None:
    payload = {"names": ["hello"], "manager": "apt", "dry_run": True}
    result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, payload))
    installed = subprocess.run(["dpkg", "-s", "hello"], capture_output=True).returncode == 0
    assert result.status is CommandStatus.SUCCEEDED, result
    if installed:
        assert result.error.startswith("dry run: already installed hello ")
    else:
        assert result.error.startswith("dry run: would install hello ")
        assert "Inst hello" in result.stdout
    assert subprocess.run(["dpkg", "-s", "hello"], capture_output=True).returncode == (
        0 if installed else 1
    )  # nothing changed


@needs_apt
async def test_an_unknown_package_is_a_clear_failure() -> None:
    payload = {"names": ["steward-no-such-package"], "manager": "auto", "dry_run": True}
    result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error == "package not found: steward-no-such-package"


@needs_apt
async def test_an_unknown_version_is_a_clear_failure() -> None:
    payload = {"names": ["hello"], "version": "0.0-steward", "manager": "apt", "dry_run": True}
    result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error == "version not found: hello 0.0-steward"


@needs_apt
async def test_list_with_apt_is_filtered_tab_separated() -> None:
    payload = {"manager": "apt", "filter": "python3"}
    result = await run_command(dispatch(CommandType.PACKAGE_LIST, payload))
    assert result.status is CommandStatus.SUCCEEDED
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows and all(len(row) == 2 and "python3" in row[0] and row[1] for row in rows)
    every = await run_command(dispatch(CommandType.PACKAGE_LIST, {"manager": "apt"}))
    names = {line.split("\t")[0] for line in every.stdout.splitlines()}
    assert "dpkg" in names and len(names) > len(rows)


@pytest.mark.parametrize(
    "payload",
    [
        {"names": ["hello; rm -rf /"]},
        {"names": ["-oAPT::Get::Assume-Yes=1"]},
        {"names": ["--purge"]},
        {"names": ["hello world"]},
        {"names": ["$(id)"]},
        {"names": []},
        {"names": ["a", "b"], "version": "1.0"},
        {"names": ["hello"], "version": "-1"},
        {"names": ["hello"], "manager": "pip"},
        {"names": ["hello"], "unexpected": True},
    ],
)
async def test_payloads_that_could_smuggle_options_are_refused(payload: dict[str, object]) -> None:
    result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error.startswith("invalid payload:")
    assert result.exit_code is None and result.stdout == ""


def test_a_manager_that_is_not_installed_is_refused() -> None:
    missing = next(m for m in ("zypper", "choco", "winget", "brew") if not shutil.which(m))
    with pytest.raises(ManagerUnavailable, match=f"package manager {missing} is not installed"):
        choose_manager(missing)
    with pytest.raises(ManagerUnavailable, match="no supported package manager"):
        choose_manager("auto", platform="plan9")


async def test_a_missing_manager_fails_the_command() -> None:
    missing = next(m for m in ("zypper", "choco", "winget", "brew") if not shutil.which(m))
    payload = {"names": ["hello"], "manager": missing}
    result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error == f"package manager {missing} is not installed here"


def _plan(verb: str, manager: str, **payload: object) -> list[list[str]]:
    return change_plan(verb, manager, PackagePayload.model_validate(payload)).commands


def test_argv_per_manager_is_non_interactive_and_pinned() -> None:
    assert _plan("install", "apt", names=["hello"], version="2.10-3") == [
        ["apt-get", "-y", "-o", "Dpkg::Options::=--force-confold", "install", "--", "hello=2.10-3"]
    ]
    assert _plan("uninstall", "apt", names=["a", "b"], dry_run=True) == [
        ["apt-get", "-s", "remove", "--", "a", "b"]
    ]
    assert _plan("upgrade", "dnf", names=["curl"], version="8.0") == [
        ["dnf", "-y", "upgrade", "--", "curl-8.0"]
    ]
    assert _plan("install", "yum", names=["curl"], dry_run=True) == [
        ["yum", "--assumeno", "install", "--", "curl"]
    ]
    assert _plan("install", "zypper", names=["curl"], version="8", dry_run=True) == [
        ["zypper", "--non-interactive", "install", "--dry-run", "--", "curl=8"]
    ]
    assert _plan("install", "choco", names=["git"], version="2.4", dry_run=True) == [
        ["choco", "install", "git", "-y", "--no-progress", "--version", "2.4", "--noop"]
    ]
    winget = _plan("install", "winget", names=["Git.Git", "Mozilla.Firefox"])
    assert [argv[:4] for argv in winget] == [
        ["winget", "install", "--id", "Git.Git"],
        ["winget", "install", "--id", "Mozilla.Firefox"],
    ]
    assert {"--exact", "--silent", "--accept-package-agreements"} <= set(winget[0])
    assert _plan("install", "brew", names=["wget"], version="1.21", dry_run=True) == [
        ["brew", "install", "--dry-run", "wget@1.21"]
    ]
    assert list_plan("apt")[0] == "dpkg-query" and list_plan("dnf")[:2] == ["rpm", "-qa"]


@pytest.mark.skipif(
    not REAL_PACKAGES,
    reason="installs a real package: needs root and CI=true or STEWARD_TEST_REAL_PACKAGES=1",
)
async def test_real_install_list_and_uninstall_of_hello() -> None:
    if not HAS_APT:
        pytest.fail("CI runs the real package test on a machine with apt-get")
    subprocess.run(["apt-get", "remove", "-y", "hello"], capture_output=True)
    install = {"names": ["hello"], "manager": "apt"}
    result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, install, timeout_s=50))
    if result.error == "package not found: hello":  # package lists not fetched yet
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=40)
        result = await run_command(dispatch(CommandType.PACKAGE_INSTALL, install, timeout_s=50))
    try:
        assert result.status is CommandStatus.SUCCEEDED, result
        assert result.error.startswith("installed hello ")
        assert subprocess.run(["hello"], capture_output=True, text=True).stdout == (
            "Hello, world!\n"
        )
        listed = await run_command(dispatch(CommandType.PACKAGE_LIST, {"filter": "hello"}))
        assert any(line.startswith("hello\t") for line in listed.stdout.splitlines())
        again = await run_command(dispatch(CommandType.PACKAGE_INSTALL, install))
        assert again.status is CommandStatus.SUCCEEDED
        assert again.error.startswith("already installed hello ")
    finally:
        removed = await run_command(dispatch(CommandType.PACKAGE_UNINSTALL, install, timeout_s=50))
    assert removed.status is CommandStatus.SUCCEEDED, removed
    assert removed.error.startswith("uninstalled hello ")
    listed = await run_command(dispatch(CommandType.PACKAGE_LIST, {"filter": "hello"}))
    assert not any(line.startswith("hello\t") for line in listed.stdout.splitlines())
    gone = await run_command(dispatch(CommandType.PACKAGE_UNINSTALL, install))
    assert gone.error == "not installed: hello"
