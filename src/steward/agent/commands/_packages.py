"""`package.install | uninstall | upgrade | list` through the machine's package manager, always
non-interactive, names after `--` where the tool supports it, versions pinned its own way.
The tool's output is turned into a one-line outcome (`installed hello 2.10-3`,
`package not found: xyz`) carried in the result's `error` field."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass

from steward.agent._executor import CommandContext, Outcome
from steward.protocol import CommandResult, CommandStatus, CommandType
from steward.protocol.payloads import PackageListPayload, PackagePayload, Payload

# Which managers `auto` tries, in order, per OS.
AUTO_MANAGERS = {
    "win32": ("winget", "choco"),
    "linux": ("apt", "dnf", "yum", "zypper"),
    "darwin": ("brew",),
}
_PROGRAMS = {
    "apt": "apt-get",
    "dnf": "dnf",
    "yum": "yum",
    "zypper": "zypper",
    "choco": "choco",
    "winget": "winget",
    "brew": "brew",
}
_VERBS = {
    CommandType.PACKAGE_INSTALL: "install",
    CommandType.PACKAGE_UNINSTALL: "uninstall",
    CommandType.PACKAGE_UPGRADE: "upgrade",
}
_PAST = {"install": "installed", "uninstall": "uninstalled", "upgrade": "upgraded"}
# Messages that mean "no such package", per manager (group 1: the name when the tool says it).
_NOT_FOUND = (
    re.compile(r"E: Unable to locate package (\S+)"),
    re.compile(r"E: Package '([^']+)' has no installation candidate"),
    re.compile(r"No match for argument: (\S+)"),
    re.compile(r"Unable to find a match: (\S+)"),
    re.compile(r"No package (\S+) available"),
    re.compile(r"No provider of '([^']+)' found"),
    re.compile(r"Package '([^']+)' not found"),
    re.compile(r"No available formula with the name \"([^\"]+)\""),
    re.compile(r"The package was not found with the source\(s\) listed"),
    re.compile(r"No package found matching input criteria"),
    re.compile(r"No installed package found matching input criteria"),
)
_APT_VERSION = re.compile(r"E: Version '([^']+)' for '([^']+)' was not found")


class ManagerUnavailable(Exception):
    """The requested (or any) package manager is not installed here."""


@dataclass(frozen=True)
class Plan:
    manager: str
    commands: list[list[str]]  # run one after the other (winget: one per package)
    env: dict[str, str]


def choose_manager(requested: str, platform: str = sys.platform) -> str:
    """The manager to use: `requested` if installed, or the first installed one for `auto`."""
    if requested != "auto":
        if shutil.which(_PROGRAMS[requested]) is None:
            raise ManagerUnavailable(f"package manager {requested} is not installed here")
        return requested
    key = "linux" if platform.startswith("linux") else platform
    for manager in AUTO_MANAGERS.get(key, ()):
        if shutil.which(_PROGRAMS[manager]) is not None:
            return manager
    raise ManagerUnavailable(f"no supported package manager found on {platform}")


def change_plan(verb: str, manager: str, payload: PackagePayload) -> Plan:
    """The argv lists that install / uninstall / upgrade `payload.names` with `manager`."""
    names, version, dry = list(payload.names), payload.version, payload.dry_run
    env: dict[str, str] = {}
    if manager == "apt":
        env = {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
        pinned = [f"{names[0]}={version}"] if version else names
        action = {"install": ["install"], "uninstall": ["remove"]}.get(
            verb, ["install", "--only-upgrade"]
        )
        options = ["-s"] if dry else ["-y", "-o", "Dpkg::Options::=--force-confold"]
        return Plan(manager, [["apt-get", *options, *action, "--", *pinned]], env)
    if manager in ("dnf", "yum"):
        pinned = [f"{names[0]}-{version}"] if version else names
        rpm_action = {"install": "install", "uninstall": "remove"}.get(verb, "upgrade")
        answer = "--assumeno" if dry else "-y"
        return Plan(manager, [[manager, answer, rpm_action, "--", *pinned]], env)
    if manager == "zypper":
        pinned = [f"{names[0]}={version}"] if version else names
        zypper_action = {"install": "install", "uninstall": "remove"}.get(verb, "update")
        dry_flag = ["--dry-run"] if dry else []
        argv = ["zypper", "--non-interactive", zypper_action, *dry_flag, "--", *pinned]
        return Plan(manager, [argv], env)
    if manager == "choco":
        pinned = ["--version", version] if version else []
        dry_flag = ["--noop"] if dry else []
        return Plan(
            manager, [["choco", verb, *names, "-y", "--no-progress", *pinned, *dry_flag]], env
        )
    if manager == "winget":
        common = ["--exact", "--silent", "--accept-source-agreements", "--disable-interactivity"]
        if verb != "uninstall":
            common.append("--accept-package-agreements")
        pinned = ["--version", version] if version else []
        commands = [["winget", verb, "--id", name, *common, *pinned] for name in names]
        return Plan(manager, commands, env)
    pinned = [f"{names[0]}@{version}"] if version else names  # brew
    dry_flag = ["--dry-run"] if dry and verb != "uninstall" else []
    return Plan(manager, [["brew", verb, *dry_flag, *pinned]], {"HOMEBREW_NO_AUTO_UPDATE": "1"})


def list_plan(manager: str) -> list[str]:
    if manager == "apt":
        return ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\n"]
    if manager in ("dnf", "yum", "zypper"):
        return ["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"]
    if manager == "choco":
        return ["choco", "list", "--limit-output"]
    if manager == "winget":
        return ["winget", "list", "--accept-source-agreements", "--disable-interactivity"]
    return ["brew", "list", "--versions"]


def parse_list(manager: str, text: str) -> list[tuple[str, str]]:
    """(name, version) pairs from the output of `list_plan(manager)`."""
    rows: list[tuple[str, str]] = []
    if manager == "winget":
        return _parse_winget_table(text)
    for line in text.splitlines():
        if manager == "apt":
            status, _, rest = line.partition("\t")
            if not status.startswith("ii"):
                continue  # removed, config files only, half installed
            line = rest
        if manager == "choco":
            name, _, version = line.partition("|")
        elif manager == "brew":
            name, _, version = line.partition(" ")
        else:
            name, _, version = line.partition("\t")
        if name.strip():
            rows.append((name.strip(), version.strip()))
    return rows


def _parse_winget_table(text: str) -> list[tuple[str, str]]:
    lines = [line.rstrip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if line.startswith("Name") and " Id " in line and "Version" in line:
            id_at, version_at = line.index(" Id ") + 1, line.index("Version")
            end = line.find(" ", version_at + len("Version") + 1)
            rows = []
            for row in lines[index + 2 :]:
                if len(row) > version_at:
                    version = row[version_at : end if end > 0 else None].split(" ")[0]
                    rows.append((row[id_at:version_at].strip(), version.strip()))
            return rows
    return []


def summarize(verb: str, manager: str, names: list[str], outcome: Outcome) -> tuple[bool, str]:
    """(succeeded, one-line outcome) from a package tool's exit code and messages."""
    text = outcome.stdout + "\n" + outcome.stderr
    version_missing = _APT_VERSION.search(text)
    if version_missing:
        return False, f"version not found: {version_missing.group(2)} {version_missing.group(1)}"
    for pattern in _NOT_FOUND:
        match = pattern.search(text)
        if match:
            name = match.group(1) if match.groups() else ", ".join(names)
            return False, f"package not found: {name}"
    if manager == "apt":
        return outcome.exit_code == 0, _summarize_apt(verb, names, text)
    dry_aborted = manager in ("dnf", "yum") and "Operation aborted" in text
    succeeded = outcome.exit_code == 0 or dry_aborted
    if succeeded:
        return True, f"{_PAST[verb]} {' '.join(names)}"
    return False, f"{verb} failed (exit code {outcome.exit_code})"


def _summarize_apt(verb: str, names: list[str], text: str) -> str:
    done = re.findall(r"^Setting up (\S+?)(?::\S+)? \(([^)]+)\)", text, re.MULTILINE)
    removed = re.findall(r"^Removing (\S+?)(?::\S+)? \(([^)]+)\)", text, re.MULTILINE)
    would = re.findall(r"^(Inst|Remv) (\S+?)(?::\S+)? [(\[]([^ )\]]+)", text, re.MULTILINE)
    newest = re.findall(r"^(\S+?)(?::\S+)? is already the newest version \(([^)]+)\)", text, re.M)
    absent = re.findall(r"^Package '([^']+)' is not installed, so not removed", text, re.M)
    parts: list[str] = []
    wanted = set(names)
    if verb == "uninstall" and removed:
        parts.append("uninstalled " + _pairs(removed, wanted))
    elif done:
        parts.append(f"{_PAST[verb]} " + _pairs(done, wanted))
    if would:
        pairs = [(name, version) for kind, name, version in would if kind == "Inst"]
        gone = [(name, version) for kind, name, version in would if kind == "Remv"]
        if pairs:
            parts.append("would install " + _pairs(pairs, wanted))
        if gone:
            parts.append("would remove " + _pairs(gone, wanted))
    if newest:
        parts.append("already installed " + _pairs(newest, wanted))
    if absent:
        parts.append("not installed: " + ", ".join(absent))
    return "; ".join(parts) or f"{verb}: nothing to do for {' '.join(names)}"


def _pairs(pairs: list[tuple[str, str]], wanted: set[str]) -> str:
    # The packages asked for first; dependencies are counted, not named.
    named = [f"{name} {version}" for name, version in pairs if name in wanted]
    others = len(pairs) - len(named)
    if not named:
        named = [f"{name} {version}" for name, version in pairs[:3]]
        others = len(pairs) - len(named)
    return ", ".join(named) + (f" (+{others} more)" if others > 0 else "")


async def change_packages(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, PackagePayload)
    verb = _VERBS[command_type]
    try:
        manager = choose_manager(payload.manager)
    except ManagerUnavailable as exc:
        return context.failed(str(exc))
    plan = change_plan(verb, manager, payload)
    if payload.dry_run and manager == "winget":  # winget cannot simulate
        lines = "\n".join(shlex.join(argv) for argv in plan.commands)
        return context.result(
            CommandStatus.SUCCEEDED, stdout=lines + "\n", error=f"dry run: would run {lines}"
        )
    env = {**os.environ, **plan.env}
    outcome: Outcome | None = None
    for index, argv in enumerate(plan.commands):
        try:
            outcome = await context.run(argv, env=env)
        except OSError as exc:
            return context.failed(f"cannot start {argv[0]}: {exc.strerror or exc}")
        names = [payload.names[index]] if manager == "winget" else list(payload.names)
        succeeded, summary = summarize(verb, manager, names, outcome)
        if not succeeded or index == len(plan.commands) - 1:
            if payload.dry_run and succeeded:
                summary = f"dry run: {summary}"
            return outcome.to_result(context, summary=summary, succeeded=succeeded)
    raise AssertionError("a plan has at least one command")


async def list_packages(
    command_type: CommandType, payload: Payload, context: CommandContext
) -> CommandResult:
    assert isinstance(payload, PackageListPayload)
    try:
        manager = choose_manager(payload.manager)
    except ManagerUnavailable as exc:
        return context.failed(str(exc))
    argv = list_plan(manager)
    try:
        outcome = await context.run(argv, stream=False)  # the raw listing is not what is sent
    except OSError as exc:
        return context.failed(f"cannot start {argv[0]}: {exc.strerror or exc}")
    if not outcome.ok:
        return outcome.to_result(context)
    needle = payload.filter.lower()
    rows = [(n, v) for n, v in parse_list(manager, outcome.stdout) if needle in n.lower()]
    listing = "".join(f"{name}\t{version}\n" for name, version in rows)
    return context.result(
        CommandStatus.SUCCEEDED, exit_code=0, stdout=listing, stderr=outcome.stderr
    )
