"""A user's scope: limits on top of the role. The most restrictive applies; deny beats allow.

Stored as JSON on the user (`User.scope`); `{}` means no limits beyond the role (except for
customers, who see only the devices assigned to them).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from steward.server.accounts.permissions import Permission

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
Pattern = Annotated[str, Field(min_length=1, max_length=200)]


class TimeWindow(BaseModel):
    """Weekdays and hours (in the tenant's time zone); `end` before `start` runs past midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Weekday] = Field(min_length=1, max_length=7)
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if value != "24:00" and not _HHMM.match(value):
            raise ValueError("times are HH:MM, 00:00 to 24:00")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("a time window needs start and end to differ")
        return self

    def contains(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        day = WEEKDAYS[local.weekday()]
        if start < end:
            return day in self.days and start <= minute < end
        # Overnight: the part after midnight belongs to the window that began the day before.
        yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
        return (day in self.days and minute >= start) or (yesterday in self.days and minute < end)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class UserScope(BaseModel):
    """What a user may reach and do beyond what the role says. `None` means "no limit"."""

    model_config = ConfigDict(extra="forbid")

    groups: list[uuid.UUID] | None = Field(default=None, max_length=500)
    devices: list[uuid.UUID] | None = Field(default=None, max_length=5000)
    deny_groups: list[uuid.UUID] = Field(default_factory=list, max_length=500)
    deny_devices: list[uuid.UUID] = Field(default_factory=list, max_length=5000)
    deny_permissions: list[Permission] = Field(default_factory=list)
    command_types: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None, max_length=50
    )
    command_allow: list[Pattern] | None = Field(default=None, max_length=200)
    command_deny: list[Pattern] = Field(default_factory=list, max_length=200)
    time_windows: list[TimeWindow] | None = Field(default=None, max_length=50)
    approval_required: bool = False

    @property
    def limits_devices(self) -> bool:
        return self.groups is not None or self.devices is not None

    def reaches(self, device_id: uuid.UUID, group_id: uuid.UUID, *, customer: bool) -> bool:
        """Whether a device is within this scope (deny lists beat everything)."""
        if device_id in self.deny_devices or group_id in self.deny_groups:
            return False
        if not self.limits_devices:
            return not customer  # customers reach only what is assigned to them
        return (self.groups is not None and group_id in self.groups) or (
            self.devices is not None and device_id in self.devices
        )

    def in_time_window(self, local: datetime) -> bool:
        if self.time_windows is None:
            return True
        return any(window.contains(local) for window in self.time_windows)


def parse_scope(raw: object) -> UserScope:
    """The stored scope; an unreadable one denies everything rather than allowing it."""
    if not raw:
        return UserScope()
    try:
        return UserScope.model_validate(raw)
    except ValueError:
        return UserScope(devices=[], command_types=[], time_windows=[])


# ---- shell command patterns ------------------------------------------------------------------

_OPERATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", "\n"})
_SUBSTITUTION = re.compile(r"\$\(|`|<\(|>\(")


def command_segments(text: str) -> list[list[str]] | None:
    """The simple commands of a shell line, tokenised; None when it cannot be read safely."""
    if _SUBSTITUTION.search(text):
        return None
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in _OPERATORS or set(token) <= set(";&|()"):
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def pattern_matches(pattern: str, segment: list[str]) -> bool:
    """`systemctl restart *` matches `systemctl restart nginx`: word by word (fnmatch), the
    program by its base name, and a last `*` word takes any remaining arguments."""
    words = shlex.split(pattern)
    if not words or not segment:
        return False
    program = segment[0].rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    candidate = [program, *segment[1:]]
    if words[-1] == "*":
        fixed = words[:-1]
        if len(candidate) < len(fixed):
            return False
        candidate = candidate[: len(fixed)]
        words = fixed
    if len(words) != len(candidate):
        return False
    return all(fnmatch.fnmatchcase(word, p) for p, word in zip(words, candidate, strict=True))


def shell_allowed(scope: UserScope, text: str) -> tuple[bool, str]:
    """(allowed, reason). Deny patterns beat allow patterns; with allow patterns, every simple
    command on the line must match one, and text that cannot be tokenised is refused."""
    if scope.command_allow is None and not scope.command_deny:
        return True, ""
    segments = command_segments(text)
    if segments is None:
        return False, "the command uses substitution or quoting that cannot be checked"
    for segment in segments:
        for pattern in scope.command_deny:
            if pattern_matches(pattern, segment):
                return False, f"denied by pattern {pattern!r}"
    if scope.command_allow is not None:
        for segment in segments:
            if not any(pattern_matches(p, segment) for p in scope.command_allow):
                return False, f"{segment[0]!r} is not among the allowed commands"
    return True, ""
