"""`locale.set`: the language a user gets at their next login.

Linux: `LANG=<locale>` in `~/.config/locale.conf` and `LANG DEFAULT=<locale>` in
`~/.pam_environment`, other lines kept, written atomically and owned by the user. Windows: a
RunOnce value that sets the culture and language list at the next login."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shlex
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steward.agent._executor import CommandContext
from steward.protocol import CommandResult, CommandStatus, CommandType
from steward.protocol.payloads import LocalePayload, Payload

_IS_WINDOWS = sys.platform == "win32"
RUN_ONCE_KEY = r"Software\Microsoft\Windows\CurrentVersion\RunOnce"
RUN_ONCE_VALUE = "StewardLocale"


@dataclass(frozen=True)
class Home:
    user: str
    path: Path
    uid: int
    gid: int


# Given a user name (or None for everyone), the homes to write into.
HomeResolver = Callable[[str | None], list[Home]]


class LocaleError(Exception):
    pass


def system_homes(user: str | None) -> list[Home]:
    """The home of `user`, or of every account whose home is under /home."""
    import pwd

    if user is not None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise LocaleError(f"no such user: {user}") from None
        return [Home(entry.pw_name, Path(entry.pw_dir), entry.pw_uid, entry.pw_gid)]
    return [
        Home(entry.pw_name, Path(entry.pw_dir), entry.pw_uid, entry.pw_gid)
        for entry in pwd.getpwall()
        if entry.pw_dir.startswith("/home/") and Path(entry.pw_dir).is_dir()
    ]


def windows_tag(locale: str) -> str:
    """`ko_KR.UTF-8` → `ko-KR` (a BCP 47 tag), `ko` → `ko`."""
    return locale.split(".")[0].replace("_", "-")


def updated_locale_conf(old: str, locale: str) -> str:
    kept = [line for line in old.splitlines() if not line.strip().startswith("LANG=")]
    return "".join(f"{line}\n" for line in [f"LANG={locale}", *kept])


def updated_pam_environment(old: str, locale: str) -> str:
    kept = [line for line in old.splitlines() if line.split()[:1] != ["LANG"]]
    return "".join(f"{line}\n" for line in [f"LANG DEFAULT={locale}", *kept])


def write_user_file(home: Home, relative: str, update: Callable[[str], str]) -> Path:
    """Rewrite `home/relative` atomically with `update(old text)`, owned by the user. Refuses
    to follow symbolic links the user could have planted (the agent runs as root)."""
    target = home.path / relative
    _check_directory(home.path, home)
    parent = target.parent
    if not parent.exists():
        parent.mkdir(mode=0o755)
        _chown(parent, home)
    _check_directory(parent, home)
    if target.is_symlink():
        raise LocaleError(f"{target} is a symbolic link: not writing it")
    old = target.read_text(encoding="utf-8", errors="replace") if target.exists() else ""
    tmp = parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(update(old).encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        _chown(tmp, home)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def _check_directory(path: Path, home: Home) -> None:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise LocaleError(f"{path} is not a plain directory: not writing into it")
    if os.geteuid() == 0 and info.st_uid not in (home.uid, 0):
        raise LocaleError(f"{path} belongs to another user: not writing into it")


def _chown(path: Path, home: Home) -> None:
    if os.geteuid() == 0:
        os.chown(path, home.uid, home.gid, follow_symlinks=False)


def set_linux_locale(payload: LocalePayload, homes: HomeResolver) -> tuple[list[str], str]:
    """Write (or with `dry_run` describe) the files; (lines of output, summary)."""
    targets = homes(payload.user)
    if not targets:
        raise LocaleError("no user home found under /home")
    lines: list[str] = []
    for home in targets:
        for relative, content in (
            (".config/locale.conf", f"LANG={payload.locale}"),
            (".pam_environment", f"LANG DEFAULT={payload.locale}"),
        ):
            path = home.path / relative
            if payload.dry_run:
                lines.append(f"would write {content!r} into {path}")
                continue
            if relative == ".config/locale.conf":
                write_user_file(
                    home, relative, lambda old: updated_locale_conf(old, payload.locale)
                )
            else:
                write_user_file(
                    home, relative, lambda old: updated_pam_environment(old, payload.locale)
                )
            lines.append(f"wrote {content!r} into {path}")
    users = ", ".join(home.user for home in targets)
    verb = "would set" if payload.dry_run else "set"
    return lines, f"{verb} {payload.locale} for {users} (at next login)"


def windows_locale_argvs(payload: LocalePayload, sid: str | None) -> list[str]:
    tag = windows_tag(payload.locale)
    script = f"Set-Culture {tag}; Set-WinUserLanguageList -LanguageList {tag} -Force"
    command = f'powershell.exe -NoProfile -WindowStyle Hidden -Command "{script}"'
    hive = f"HKU\\{sid}" if sid else "HKLM"
    key = f"{hive}\\{RUN_ONCE_KEY}"
    return ["reg.exe", "add", key, "/v", RUN_ONCE_VALUE, "/t", "REG_SZ", "/d", command, "/f"]


async def set_locale(
    command_type: CommandType,
    payload: Payload,
    context: CommandContext,
    homes: HomeResolver = system_homes,
) -> CommandResult:
    assert isinstance(payload, LocalePayload)
    if _IS_WINDOWS:
        return await _set_windows_locale(payload, context)
    try:
        lines, summary = await asyncio.to_thread(set_linux_locale, payload, homes)
    except (LocaleError, OSError) as exc:
        return context.failed(str(exc))
    stdout = "".join(f"{line}\n" for line in lines)
    return context.result(CommandStatus.SUCCEEDED, exit_code=0, stdout=stdout, error=summary)


async def _set_windows_locale(payload: LocalePayload, context: CommandContext) -> CommandResult:
    sid: str | None = None
    if payload.user:  # the name is checked by the payload's pattern: no quotes, no spaces
        lookup = (
            f"(New-Object System.Security.Principal.NTAccount('{payload.user}'))"
            ".Translate([System.Security.Principal.SecurityIdentifier]).Value"
        )
        argv = ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", lookup]
        try:
            outcome = await context.run(argv, stream=False)
        except OSError as exc:
            return context.failed(f"cannot start powershell: {exc.strerror or exc}")
        if not outcome.ok or not outcome.stdout.strip():
            return outcome.to_result(context, error=f"no such user: {payload.user}")
        sid = outcome.stdout.strip()
    argv = windows_locale_argvs(payload, sid)
    if payload.dry_run:
        return context.result(
            CommandStatus.SUCCEEDED, exit_code=0, stdout=f"would run: {shlex.join(argv)}\n"
        )
    try:
        outcome = await context.run(argv)
    except OSError as exc:
        return context.failed(f"cannot start reg.exe: {exc.strerror or exc}")
    who = payload.user or "the next user to log in"
    return outcome.to_result(
        context,
        error="" if outcome.ok else "cannot write RunOnce (is the user's profile loaded?)",
        summary=f"set {payload.locale} for {who} (at next login)",
    )
