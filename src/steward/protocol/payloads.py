"""The payload of each command type: one definition shared by the server (which validates what
people submit) and the agent (which validates what it is told to run, again).

Names that end up on a command line (packages, services, users, locales) are checked against
strict patterns: no spaces, no shell punctuation, never a leading `-` (an option). The agent
builds argv lists from these fields; only `shell` ever goes through an interpreter.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from steward.protocol.messages import CommandType

MAX_SHELL_TEXT = 64 * 1024
MAX_SCRIPT_BYTES = 256 * 1024

_PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._:@/-]{0,127}")
_PACKAGE_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+:~_-]{0,63}")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9@._:-]{0,127}")
_PROCESS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9 ._+-]{0,127}")
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@\\-]{0,63}")
_LOCALE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?(\.(UTF-8|utf8))?")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"not a valid {what}: letters, digits and {what}-safe punctuation")
        return value

    return AfterValidator(check)


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


PackageName = Annotated[str, _matching(_PACKAGE_NAME, "package name")]
PackageVersion = Annotated[str, _matching(_PACKAGE_VERSION, "package version")]
ServiceName = Annotated[str, _matching(_SERVICE_NAME, "service name")]
ProcessName = Annotated[str, _matching(_PROCESS_NAME, "process name")]
UserName = Annotated[str, _matching(_USER_NAME, "user name")]
Locale = Annotated[str, _matching(_LOCALE, "locale (for example ko_KR.UTF-8)")]
EnvName = Annotated[str, _matching(_ENV_NAME, "environment variable name")]
PlainText = Annotated[str, AfterValidator(_no_control)]

Interpreter = Literal["sh", "bash", "cmd", "powershell"]
ScriptInterpreter = Literal["sh", "bash", "cmd", "powershell", "python"]
PackageManager = Literal["auto", "choco", "winget", "apt", "dnf", "yum", "zypper", "brew"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShellPayload(Payload):
    command: str = Field(min_length=1, max_length=MAX_SHELL_TEXT)
    interpreter: Interpreter | None = None  # per OS when absent: cmd on Windows, sh elsewhere


class ScriptPayload(Payload):
    """A script from the tenant library, resolved by the server at submission: the agent gets
    the exact text that was approved. Parameters arrive as environment variables (`env`) and
    arguments (`args`), never spliced into the text."""

    script_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)
    interpreter: ScriptInterpreter
    body: str = Field(min_length=1, max_length=MAX_SCRIPT_BYTES)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    env: dict[EnvName, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=64
    )
    args: list[Annotated[str, Field(max_length=4096)]] = Field(default_factory=list, max_length=64)


class PackagePayload(Payload):
    """`package.install | uninstall | upgrade`: one or more packages, one manager."""

    names: list[PackageName] = Field(min_length=1, max_length=50)
    version: PackageVersion | None = None  # only with a single name
    manager: PackageManager = "auto"
    dry_run: bool = False

    @model_validator(mode="after")
    def _version_for_one(self) -> PackagePayload:
        if self.version is not None and len(self.names) != 1:
            raise ValueError("a version can only be given for a single package")
        return self


class PackageListPayload(Payload):
    manager: PackageManager = "auto"
    filter: Annotated[str, Field(max_length=128)] = ""  # substring of the name


class PowerPayload(Payload):
    """`power.reboot | shutdown | logoff`: after `delay_s`, telling logged-in users first."""

    delay_s: int = Field(default=60, ge=0, le=24 * 3600)
    message: Annotated[PlainText, Field(max_length=500)] = ""
    force: bool = False
    dry_run: bool = False  # say what would be run, run nothing


class MessagePayload(Payload):
    title: Annotated[PlainText, Field(max_length=100)] = ""
    text: str = Field(min_length=1, max_length=2000)


class LocalePayload(Payload):
    """Applied at the user's next login (Windows RunOnce, Linux ~/.config/locale.conf /
    ~/.pam_environment); all users who log in when `user` is empty."""

    locale: Locale
    user: UserName | None = None
    dry_run: bool = False


class ServicePayload(Payload):
    name: ServiceName


class ProcessListPayload(Payload):
    filter: Annotated[str, Field(max_length=128)] = ""  # substring of the process name


class ProcessKillPayload(Payload):
    """Exactly one of `pid` and `name`. `tree` kills the children too."""

    pid: int | None = Field(default=None, gt=0, le=2**31)
    name: ProcessName | None = None
    tree: bool = True
    force: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> ProcessKillPayload:
        if (self.pid is None) == (self.name is None):
            raise ValueError("give exactly one of pid and name")
        return self


PAYLOADS: dict[CommandType, type[Payload]] = {
    CommandType.SHELL: ShellPayload,
    CommandType.SCRIPT: ScriptPayload,
    CommandType.PACKAGE_INSTALL: PackagePayload,
    CommandType.PACKAGE_UNINSTALL: PackagePayload,
    CommandType.PACKAGE_UPGRADE: PackagePayload,
    CommandType.PACKAGE_LIST: PackageListPayload,
    CommandType.POWER_REBOOT: PowerPayload,
    CommandType.POWER_SHUTDOWN: PowerPayload,
    CommandType.POWER_LOGOFF: PowerPayload,
    CommandType.MESSAGE: MessagePayload,
    CommandType.LOCALE_SET: LocalePayload,
    CommandType.SERVICE_START: ServicePayload,
    CommandType.SERVICE_STOP: ServicePayload,
    CommandType.SERVICE_RESTART: ServicePayload,
    CommandType.SERVICE_STATUS: ServicePayload,
    CommandType.PROCESS_LIST: ProcessListPayload,
    CommandType.PROCESS_KILL: ProcessKillPayload,
}


def parse_payload(command_type: CommandType | str, payload: dict[str, Any]) -> Payload:
    """The validated payload of a command type. Raises ValueError (pydantic's
    ValidationError is one) for an unknown type or a payload that does not fit it."""
    model = PAYLOADS.get(CommandType(command_type))
    if model is None:
        raise ValueError(f"unknown command type {command_type!r}")
    return model.model_validate(payload)
