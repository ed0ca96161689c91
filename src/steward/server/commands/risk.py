"""How dangerous a command looks: `low | medium | high`, with the reasons, before it is sent.

Shell text is tokenised (accounts/scope.py: shell-aware, one simple command at a time) and
matched on program names and arguments, never on substrings. This informs people and drives
approval; it is not a security boundary (a script or an alias gets round any reading of text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from steward.server.accounts.scope import command_segments


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return (Risk.LOW, Risk.MEDIUM, Risk.HIGH).index(self)


@dataclass
class Assessment:
    level: Risk = Risk.LOW
    reasons: list[str] = field(default_factory=list)

    def add(self, level: Risk, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
        if level.rank > self.level.rank:
            self.level = level


RECURSIVE_DELETE = "deletes files recursively"
DISK = "formats or overwrites a disk"
POWER = "shuts down, reboots or logs off the machine"
REGISTRY = "edits the Windows registry"
ACCOUNTS = "changes users, groups or permissions"
DOWNLOAD_TO_SHELL = "runs something downloaded from the network"
HIDDEN = "runs hidden, encoded or nested commands"
SERVICES = "stops or restarts services"
PROCESSES = "kills processes"
PACKAGES = "installs or removes software"
UNREADABLE = "uses substitution or quoting that cannot be read"

_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "cmd", "cmd.exe", "powershell", "powershell.exe",
           "pwsh", "iex", "invoke-expression"}  # fmt: skip
_DOWNLOADERS = {"curl", "wget", "iwr", "invoke-webrequest", "irm", "invoke-restmethod"}
_POWER = {"shutdown", "reboot", "poweroff", "halt", "restart-computer", "stop-computer",
          "logoff", "logout"}  # fmt: skip
_DISK = {"mkfs", "format", "diskpart", "fdisk", "parted", "wipefs", "sfdisk", "format-volume",
         "clear-disk", "initialize-disk"}  # fmt: skip
_ACCOUNTS = {"useradd", "userdel", "usermod", "adduser", "deluser", "passwd", "groupadd",
             "groupdel", "gpasswd", "visudo", "new-localuser", "remove-localuser",
             "add-localgroupmember", "set-localuser", "icacls", "takeown", "cacls"}  # fmt: skip
_PROCESSES = {"kill", "pkill", "killall", "taskkill", "stop-process", "xkill"}
_PACKAGES = {"apt", "apt-get", "dnf", "yum", "zypper", "choco", "winget", "brew", "pip", "msiexec"}
_PACKAGE_VERBS = {"install", "remove", "uninstall", "purge", "upgrade", "autoremove", "erase"}
_SERVICE_VERBS = {"stop", "restart", "disable", "mask", "kill"}


def _program(word: str) -> str:
    name = word.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


def _flags(args: list[str]) -> set[str]:
    return {a.lower() for a in args if a.startswith(("-", "/"))}


_WRAPPERS = {"sudo", "doas", "env", "nohup", "nice", "time", "xargs", "runas", "exec", "command"}


def _unwrap(words: list[str], depth: int = 0) -> list[list[str]]:
    """`sudo -u root env X=1 rm -rf /` holds `rm -rf /`: the commands a wrapper may run, tried
    from each of its first few words (an option's value is tried too: reading too much is the
    safe side)."""
    if not words or _program(words[0]) not in _WRAPPERS or depth >= 3:
        return [words] if words else []
    rest = words[1:]
    starts = [i for i, a in enumerate(rest) if not a.startswith("-") and "=" not in a][:3]
    return [inner for i in starts for inner in _unwrap(rest[i:], depth + 1)]


def _deletes_recursively(program: str, args: list[str], flags: set[str]) -> bool:
    if program == "rm":
        return any(re.fullmatch(r"-[a-zA-Z]*[rR][a-zA-Z]*|--recursive", a) for a in args)
    return program in {"remove-item", "ri", "del", "erase", "rd", "rmdir"} and bool(
        {"-recurse", "/s", "-r"} & flags
    )


def _touches_disk(program: str, args: list[str]) -> bool:
    if program.startswith("mkfs") or program in _DISK:
        return True
    return program == "dd" and any(a.startswith("of=/dev/") for a in args)


def _powers(program: str, lowered: list[str]) -> bool:
    if program in _POWER:
        return True
    if program == "init":
        return lowered[:1] in (["0"], ["6"])
    return program == "systemctl" and bool(lowered) and lowered[0] in {"poweroff", "reboot", "halt"}


def _edits_registry(program: str, args: list[str], lowered: list[str]) -> bool:
    if program in {"reg", "regedit"}:
        return not lowered or lowered[0] != "query"
    keys = ("hklm:", "hkcu:", "registry::")
    return program in {"set-itemproperty", "remove-itemproperty", "new-itemproperty"} and any(
        a.startswith(keys) for a in lowered
    )


def _changes_accounts(program: str, lowered: list[str]) -> bool:
    return program in _ACCOUNTS or (program == "net" and lowered[:1] in (["user"], ["localgroup"]))


def _stops_services(program: str, lowered: list[str]) -> bool:
    if program in {"stop-service", "restart-service", "set-service"}:
        return True
    return program in {"systemctl", "service", "sc", "net"} and bool(set(lowered) & _SERVICE_VERBS)


_NESTED_FLAGS = {"-c", "/c", "/k", "-command", "-encodedcommand", "-enc", "-e", "-ec"}


def _shell_segment(words: list[str], result: Assessment) -> None:
    for inner in _unwrap(words):
        _simple_command(inner, result)


def _simple_command(words: list[str], result: Assessment) -> None:
    program, args = _program(words[0]), words[1:]
    lowered = [a.lower() for a in args]
    flags = _flags(args)
    if _deletes_recursively(program, args, flags):
        result.add(Risk.HIGH, RECURSIVE_DELETE)
    if _touches_disk(program, args):
        result.add(Risk.HIGH, DISK)
    if _powers(program, lowered):
        result.add(Risk.HIGH, POWER)
    if _edits_registry(program, args, lowered):
        result.add(Risk.HIGH, REGISTRY)
    if _changes_accounts(program, lowered):
        result.add(Risk.HIGH, ACCOUNTS)
    if program in {"chmod", "chown", "chgrp"}:
        recursive = bool({"-r", "-R", "--recursive"} & set(args))
        result.add(Risk.HIGH if recursive else Risk.MEDIUM, ACCOUNTS)
    if program in _SHELLS and _NESTED_FLAGS & flags:
        result.add(Risk.HIGH, HIDDEN)
    if _stops_services(program, lowered):
        result.add(Risk.MEDIUM, SERVICES)
    if program in _PROCESSES:
        result.add(Risk.MEDIUM, PROCESSES)
    if program in _PACKAGES and set(lowered) & _PACKAGE_VERBS:
        result.add(Risk.MEDIUM, PACKAGES)


def assess_shell(text: str) -> Assessment:
    result = Assessment()
    segments = command_segments(text)
    if segments is None:
        result.add(Risk.MEDIUM, UNREADABLE)
        # Still read what can be read: what is inside a substitution is a command of its own.
        segments = command_segments(re.sub(r"\$\(|`|<\(|>\(|\(|\)", " ; ", text)) or []
    for words in segments:
        _shell_segment(words, result)
    # A download piped into a shell or an evaluator.
    programs = [_program(inner[0]) for words in segments for inner in _unwrap(words)]
    if (
        "|" in text
        and any(p in _DOWNLOADERS for p in programs)
        and any(p in _SHELLS for p in programs)
    ):
        result.add(Risk.HIGH, DOWNLOAD_TO_SHELL)
    return result


def assess(command_type: str, payload: dict[str, Any]) -> Assessment:
    """The risk of a command of any type, with the reasons."""
    if command_type == "shell":
        text = payload.get("command")
        return assess_shell(text) if isinstance(text, str) else Assessment()
    result = Assessment()
    family, _, verb = command_type.partition(".")
    if family == "power":
        result.add(Risk.HIGH, POWER)
    elif family == "package" and verb in {"install", "uninstall", "upgrade"}:
        result.add(Risk.MEDIUM, PACKAGES)
    elif family == "service" and verb in {"stop", "restart"}:
        result.add(Risk.MEDIUM, SERVICES)
    elif family == "process" and verb == "kill":
        result.add(Risk.MEDIUM, PROCESSES)
    return result
