"""How dangerous a command looks: `low | medium | high`, with the reasons, before it is sent.

Shell text is tokenised (accounts/scope.py: shell-aware, one simple command at a time) and
matched on program names and arguments, never on substrings. This informs people and drives
approval; it is not a security boundary (a script or an alias gets round any reading of text).
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Iterator
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


# ---- reading a shell line: what it may run -----------------------------------------------------

_WRAPPERS = {"sudo", "doas", "env", "nohup", "nice", "ionice", "time", "timeout", "xargs", "runas",
             "exec", "command", "busybox", "stdbuf", "setsid", "chroot", "strace"}  # fmt: skip
_POSIX_SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "su"}
_POWERSHELLS = {"powershell", "pwsh"}
_EVALUATORS = {"iex", "invoke-expression"}
_FIND_EXEC = {"-exec", "-execdir", "-ok", "-okdir"}
# powershell.exe options that take a value (so that value is not read as the command)
_PS_VALUE_OPTIONS = ("executionpolicy", "ep", "ex", "windowstyle", "w", "inputformat", "if",
                     "outputformat", "of", "version", "v", "workingdirectory", "wd",
                     "configurationname", "psconsolefile", "settingsfile")  # fmt: skip
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_MAX_DEPTH = 4  # texts nested in texts (`bash -c "sh -c '...'"`)
_MAX_UNWRAPPED = 200  # commands found through the wrappers of one simple command


@dataclass(frozen=True)
class ShellReading:
    """What a shell line may run, read without running it (and without trusting it).

    `segments` are the simple commands as written (`;`, `&&`, `||`, `|` and newlines split
    them); `commands` adds what their wrappers run (`sudo`, `env X=1`, `xargs`, `find -exec`);
    `inner` holds the readings of the texts they hand to another interpreter (`$(...)`,
    backticks, `bash -c`, `cmd /c`, `powershell -Command` and decoded `-EncodedCommand`)."""

    segments: tuple[tuple[str, ...], ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()
    inner: tuple[ShellReading, ...] = ()
    substitution: bool = False  # $(...), backticks, <(...): their insides are in `inner`
    opaque: str = ""  # why part of it cannot be read at all ("" when it all can)

    def walk(self) -> Iterator[ShellReading]:
        yield self
        for reading in self.inner:
            yield from reading.walk()

    @property
    def all_commands(self) -> Iterator[tuple[str, ...]]:
        for reading in self.walk():
            yield from reading.commands

    @property
    def opaque_reason(self) -> str:
        return next((r.opaque for r in self.walk() if r.opaque), "")

    @property
    def uses_substitution(self) -> bool:
        return any(r.substitution for r in self.walk())


def program_name(word: str) -> str:
    """`/usr/bin/RM`, `C:\\bin\\rm.exe`, `\\rm` -> `rm`: the base name, lower case, no `.exe`."""
    name = word.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].lower()
    return name[:-4] if name.endswith(".exe") else name


_program = program_name


def read_shell(text: str, depth: int = 0) -> ShellReading:
    if depth > _MAX_DEPTH:
        return ShellReading(opaque="commands nested too deeply")
    outer, bodies = _substitutions(text)
    segments = _segments(outer)
    opaque = "" if segments is not None else "quoting that cannot be read"
    commands: list[tuple[str, ...]] = []
    for segment in segments or []:
        unwrapped, complete = _unwrap(segment)
        commands.extend(unwrapped)
        if not complete:
            opaque = opaque or "too many wrapped commands"
    texts = list(bodies)
    for command in commands:
        found, readable = _nested_texts(command)
        texts.extend(found)
        if not readable:
            opaque = opaque or "an encoded command that cannot be decoded"
    texts.extend(_piped_into_a_shell(outer, commands))
    return ShellReading(
        segments=tuple(tuple(s) for s in segments or []),
        commands=tuple(dict.fromkeys(commands)),
        inner=tuple(read_shell(t, depth + 1) for t in dict.fromkeys(texts) if t.strip()),
        substitution=bool(bodies),
        opaque=opaque,
    )


def _substitutions(text: str) -> tuple[str, list[str]]:
    """The text with each `$(...)`, `<(...)`, `>(...)` and backtick substitution replaced by a
    placeholder word, and the texts inside them (quotes are ignored: reading too much is the
    safe side)."""
    outer: list[str] = []
    bodies: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(("$(", "<(", ">("), i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            bodies.append(text[i + 2 : j - 1 if depth == 0 else j])
            outer.append(" _ ")
            i = j
        elif text[i] == "`":
            end = text.find("`", i + 1)
            end = len(text) if end < 0 else end
            bodies.append(text[i + 1 : end])
            outer.append(" _ ")
            i = end + 1
        else:
            outer.append(text[i])
            i += 1
    return "".join(outer), bodies


def _segments(text: str) -> list[list[str]] | None:
    """Simple commands; with backslashes, read both as POSIX escapes and as Windows paths."""
    posix = command_segments(text)
    if "\\" not in text:
        return posix
    windows = _segments_without_escapes(text)
    if posix is None or windows is None:
        return posix if windows is None else windows
    return [list(s) for s in dict.fromkeys(tuple(s) for s in posix + windows)]


def _segments_without_escapes(text: str) -> list[list[str]] | None:
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.escape = ""
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    segments: list[list[str]] = [[]]
    for token in tokens:
        if set(token) <= set(";&|()"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def _unwrap(words: list[str]) -> tuple[list[tuple[str, ...]], bool]:
    """`sudo -u root env X=1 rm -rf /` holds `rm -rf /`: the command and what its wrappers may
    run, tried from each of a wrapper's first few words (an option's value is tried too:
    reading too much is the safe side). False when there were too many to read."""
    found: list[int] = []
    seen: set[int] = set()
    todo = [0]
    while todo:
        start = todo.pop()
        if start in seen or start >= len(words):
            continue
        if len(found) >= _MAX_UNWRAPPED:
            return [tuple(words[k:]) for k in sorted(found)], False
        seen.add(start)
        found.append(start)
        word = words[start]
        program = _program(word)
        if _ASSIGNMENT.match(word):
            todo.append(start + 1)
        elif program in _WRAPPERS:
            rest = range(start + 1, len(words))
            todo.extend(
                [i for i in rest if not words[i].startswith("-") and "=" not in words[i]][:3]
            )
            todo.extend(i for i in rest[:6] if _ASSIGNMENT.match(words[i]))
        elif program == "find":
            todo.extend(i + 1 for i in range(start + 1, len(words)) if words[i] in _FIND_EXEC)
    return [tuple(words[k:]) for k in sorted(found)], True


def _nested_texts(words: tuple[str, ...]) -> tuple[list[str], bool]:
    """The texts a command hands to an interpreter, and False when one cannot be decoded."""
    program, args = _program(words[0]), list(words[1:])
    if program in _POSIX_SHELLS:
        for i, arg in enumerate(args):
            if re.fullmatch(r"-[a-zA-Z]*c[a-zA-Z]*", arg):
                text = next((a for a in args[i + 1 :] if not a.startswith(("-", "+"))), "")
                return [text], True
        return [], True
    if program == "cmd":
        for i, arg in enumerate(args):
            if arg.lower()[:2] in ("/c", "/k", "/r"):
                return [" ".join([arg[2:], *args[i + 1 :]])], True
        return [], True
    if program in _POWERSHELLS:
        return _powershell_texts(args)
    if program in _EVALUATORS:
        return [" ".join(args)], True
    return [], True


def _powershell_texts(args: list[str]) -> tuple[list[str], bool]:
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.lstrip("-/").lower().split(":", 1)[0]
        if not arg.startswith(("-", "/")) or not name:
            return [" ".join(args[i:])], True  # a bare argument is the command
        if "encodedcommand".startswith(name) or name == "ec":
            value = args[i + 1] if i + 1 < len(args) else ""
            decoded = decode_powershell(value)
            return ([decoded], True) if decoded is not None else ([], False)
        if "command".startswith(name):
            rest = args[i + 1 :]
            return ([" ".join(rest)] if rest and rest != ["-"] else []), True
        if "file".startswith(name):
            return [], True  # a script: not readable here
        i += 2 if name in _PS_VALUE_OPTIONS else 1
    return [], True


def decode_powershell(value: str) -> str | None:
    """The text of `-EncodedCommand` (base64 of UTF-16LE), or None."""
    try:
        return base64.b64decode(value, validate=True).decode("utf-16-le")
    except (ValueError, UnicodeDecodeError):
        return None


def _piped_into_a_shell(text: str, commands: list[tuple[str, ...]]) -> list[str]:
    """`echo 'rm -rf /' | sh`: what echo/printf print may be run by a shell reading stdin."""
    if "|" not in text:
        return []
    reads_stdin = any(
        _program(c[0]) in _POSIX_SHELLS | _POWERSHELLS | {"cmd"} | _EVALUATORS
        and not [a for a in c[1:] if not a.startswith(("-", "/"))]
        for c in commands
    )
    if not reads_stdin:
        return []
    return [" ".join(c[1:]) for c in commands if _program(c[0]) in {"echo", "printf"}]


# ---- what each simple command does --------------------------------------------------------


def _flags(args: list[str]) -> set[str]:
    return {a.lower() for a in args if a.startswith(("-", "/"))}


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
    if command_segments(text) is None:
        result.add(Risk.MEDIUM, UNREADABLE)  # what can be read is still read, insides included
    reading = read_shell(text)
    programs: list[str] = []
    for words in reading.all_commands:
        program = _program(words[0])
        programs.append(program)
        if program not in _WRAPPERS:
            _simple_command(list(words), result)
    # A download piped into a shell or an evaluator.
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
