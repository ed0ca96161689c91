"""Power commands through `dry_run` only (never the real thing on a test machine), `message`
through the real `wall`, `locale.set` for real into temporary homes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from steward.agent import run_command
from steward.agent._executor import CommandContext
from steward.agent.commands._locale import Home, set_locale, windows_locale_argvs
from steward.agent.commands._power import logged_in_users, power_argvs
from steward.protocol import CommandResult, CommandStatus, CommandType
from steward.protocol.payloads import LocalePayload, PowerPayload
from tests.agent.commands_support import dispatch

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX agent behaviour")


@pytest.mark.parametrize(
    ("command_type", "payload", "expected"),
    [
        (CommandType.POWER_REBOOT, {"delay_s": 0}, "shutdown -r -- now"),
        (
            CommandType.POWER_REBOOT,
            {"delay_s": 61, "message": "patching"},
            "shutdown -r -- +2 patching",
        ),
        (
            CommandType.POWER_SHUTDOWN,
            {"delay_s": 60, "message": "bye now"},
            "shutdown -h -- +1 'bye now'",
        ),
        (CommandType.POWER_SHUTDOWN, {"delay_s": 1}, "shutdown -h -- +1"),
        (CommandType.POWER_REBOOT, {"delay_s": 0, "message": "-c"}, "shutdown -r -- now -c"),
    ],
)
async def test_power_dry_run_says_what_it_would_run(
    command_type: CommandType, payload: dict[str, object], expected: str
) -> None:
    result = await run_command(dispatch(command_type, {**payload, "dry_run": True}))
    assert result.status is CommandStatus.SUCCEEDED
    assert result.stdout == f"would run: {expected}\n"


async def test_logoff_dry_run_names_each_logged_in_user() -> None:
    result = await run_command(dispatch(CommandType.POWER_LOGOFF, {"dry_run": True}))
    assert result.status is CommandStatus.SUCCEEDED
    users = logged_in_users()
    if users:
        assert result.stdout.splitlines() == [
            f"would run: loginctl terminate-user -- {user}" for user in users
        ]
    else:
        assert result.stdout == "nothing to run: no user is logged in\n"


def test_windows_power_argv() -> None:
    reboot = PowerPayload(delay_s=30, message="update", force=True)
    assert power_argvs(CommandType.POWER_REBOOT, reboot, windows=True) == [
        ["shutdown", "/r", "/t", "30", "/c", "update", "/f"]
    ]
    assert power_argvs(CommandType.POWER_SHUTDOWN, PowerPayload(delay_s=0), windows=True) == [
        ["shutdown", "/s", "/t", "0"]
    ]
    assert power_argvs(CommandType.POWER_LOGOFF, PowerPayload(), windows=True) == [
        ["shutdown", "/l"]
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"delay_s": -1},
        {"delay_s": 10**6},
        {"message": "line\x07bell"},
        {"message": "x" * 501},
        {"force": "yes please"},
        {"reboot": True},
    ],
)
async def test_invalid_power_payloads_are_refused(payload: dict[str, object]) -> None:
    result = await run_command(dispatch(CommandType.POWER_REBOOT, {**payload, "dry_run": True}))
    assert result.status is CommandStatus.FAILED
    assert result.error.startswith("invalid payload:")


@pytest.mark.skipif(shutil.which("wall") is None, reason="wall is not installed")
async def test_message_goes_through_wall() -> None:
    payload = {"title": "Maintenance", "text": "Back in 5'; $(reboot) minutes"}
    result = await run_command(dispatch(CommandType.MESSAGE, payload))
    assert result.status is CommandStatus.SUCCEEDED, result
    assert result.error.startswith("sent to terminals")


async def test_empty_message_is_refused() -> None:
    result = await run_command(dispatch(CommandType.MESSAGE, {"text": ""}))
    assert result.status is CommandStatus.FAILED and "invalid payload" in result.error


# ---- locale ------------------------------------------------------------------------------


def _homes(tmp_path: Path, *names: str) -> dict[str, Home]:
    homes = {}
    for name in names:
        path = tmp_path / name
        path.mkdir()
        homes[name] = Home(name, path, os.getuid(), os.getgid())
    return homes


async def _set(payload: dict[str, object], homes: dict[str, Home]) -> CommandResult:
    def resolve(user: str | None) -> list[Home]:
        return [homes[user]] if user else list(homes.values())

    return await set_locale(
        CommandType.LOCALE_SET,
        LocalePayload.model_validate(payload),
        CommandContext("c-1"),
        resolve,
    )


async def test_locale_is_written_for_every_user(tmp_path: Path) -> None:
    homes = _homes(tmp_path, "alice", "bob")
    config = homes["bob"].path / ".config"
    config.mkdir()
    (config / "locale.conf").write_text("LANG=en_US.UTF-8\nLC_TIME=de_DE.UTF-8\n")
    (homes["bob"].path / ".pam_environment").write_text("EDITOR DEFAULT=vim\nLANG DEFAULT=C\n")
    result = await _set({"locale": "ko_KR.UTF-8"}, homes)
    assert result.status is CommandStatus.SUCCEEDED
    assert result.error == "set ko_KR.UTF-8 for alice, bob (at next login)"
    alice = homes["alice"].path
    assert (alice / ".config/locale.conf").read_text() == "LANG=ko_KR.UTF-8\n"
    assert (alice / ".pam_environment").read_text() == "LANG DEFAULT=ko_KR.UTF-8\n"
    assert (config / "locale.conf").read_text() == "LANG=ko_KR.UTF-8\nLC_TIME=de_DE.UTF-8\n"
    assert (homes["bob"].path / ".pam_environment").read_text() == (
        "LANG DEFAULT=ko_KR.UTF-8\nEDITOR DEFAULT=vim\n"
    )
    assert oct((alice / ".config/locale.conf").stat().st_mode & 0o777) == "0o644"
    assert not [p for p in alice.rglob(".*.tmp")]  # no temporary file left behind


async def test_locale_for_one_user_and_dry_run(tmp_path: Path) -> None:
    homes = _homes(tmp_path, "alice", "bob")
    dry = await _set({"locale": "ja_JP.UTF-8", "user": "bob", "dry_run": True}, homes)
    assert dry.stdout.splitlines() == [
        f"would write 'LANG=ja_JP.UTF-8' into {homes['bob'].path}/.config/locale.conf",
        f"would write 'LANG DEFAULT=ja_JP.UTF-8' into {homes['bob'].path}/.pam_environment",
    ]
    assert not any(tmp_path.rglob("locale.conf"))
    await _set({"locale": "ja_JP.UTF-8", "user": "bob"}, homes)
    assert (homes["bob"].path / ".config/locale.conf").exists()
    assert not (homes["alice"].path / ".config").exists()


async def test_locale_refuses_a_planted_symlink(tmp_path: Path) -> None:
    homes = _homes(tmp_path, "mallory")
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (homes["mallory"].path / ".config").symlink_to(elsewhere)
    result = await _set({"locale": "ko_KR.UTF-8"}, homes)
    assert result.status is CommandStatus.FAILED
    assert "not a plain directory" in result.error
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
async def test_locale_files_belong_to_the_user(tmp_path: Path) -> None:
    home = tmp_path / "nobody"
    home.mkdir()
    os.chown(home, 65534, 65534)
    await _set({"locale": "ko_KR.UTF-8"}, {"nobody": Home("nobody", home, 65534, 65534)})
    for path in (home / ".config", home / ".config/locale.conf", home / ".pam_environment"):
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


async def test_locale_for_an_unknown_user_fails() -> None:
    payload = {"locale": "ko_KR.UTF-8", "user": "steward-no-such-user", "dry_run": True}
    result = await run_command(dispatch(CommandType.LOCALE_SET, payload))
    assert result.status is CommandStatus.FAILED
    assert result.error == "no such user: steward-no-such-user"


@pytest.mark.parametrize(
    "payload",
    [
        {"locale": "ko_KR.UTF-8; reboot"},
        {"locale": "-o"},
        {"locale": "ko_KR.UTF-8", "user": "../root"},
        {"locale": "ko_KR.UTF-8", "user": "-r"},
    ],
)
async def test_invalid_locale_payloads_are_refused(payload: dict[str, object]) -> None:
    result = await run_command(dispatch(CommandType.LOCALE_SET, {**payload, "dry_run": True}))
    assert result.status is CommandStatus.FAILED and "invalid payload" in result.error


def test_windows_runonce_argv() -> None:
    argv = windows_locale_argvs(LocalePayload(locale="ko_KR.UTF-8"), None)
    assert argv[:3] == ["reg.exe", "add", r"HKLM\Software\Microsoft\Windows\CurrentVersion\RunOnce"]
    assert "Set-Culture ko-KR; Set-WinUserLanguageList -LanguageList ko-KR -Force" in argv[8]
    user = windows_locale_argvs(LocalePayload(locale="ko_KR", user="kim"), "S-1-5-21-1")
    assert user[2].startswith("HKU\\S-1-5-21-1\\Software")
