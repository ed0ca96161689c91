"""Request and response bodies of the terminal API."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from steward.server.terminal.models import RecordingFailurePolicy

_USER = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$", re.IGNORECASE)


class TerminalPolicyPublic(BaseModel):
    """A tenant's terminal options (`GET|PUT /api/v1/tenant/terminal-policy`)."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    # The program to run (absolute path or a name on the agent's PATH); empty: the login
    # shell of the account (Linux) or cmd.exe (Windows).
    shell: Annotated[str, Field(max_length=255)] = ""
    # Linux account to run the shell as (the agent must run as root); empty: the agent's own.
    run_as: Annotated[str, Field(max_length=64)] = ""
    idle_timeout_s: int = Field(default=900, ge=60, le=24 * 3600)
    max_duration_s: int = Field(default=4 * 3600, ge=60, le=7 * 24 * 3600)
    record_input: bool = False
    recording_failure_policy: RecordingFailurePolicy = RecordingFailurePolicy.STRICT
    # A fresh second factor before every terminal, whatever the tenant's step-up setting.
    require_step_up: bool = False

    @field_validator("run_as")
    @classmethod
    def _account(cls, value: str) -> str:
        if value and not _USER.match(value):
            raise ValueError("not a valid account name")
        return value

    @field_validator("shell")
    @classmethod
    def _shell(cls, value: str) -> str:
        if any(ord(ch) < 32 for ch in value):
            raise ValueError("control characters are not allowed")
        return value.strip()


TerminalPolicyUpdate = TerminalPolicyPublic


class TerminalSessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    device_id: uuid.UUID
    hostname: str
    user_id: uuid.UUID | None
    user_email: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    status: str
    close_reason: str
    closed_by: str
    exit_code: int | None
    error: str
    cols: int
    rows: int
    shell: str
    run_as: str
    recording_bytes: int
    recording_sha256: str
    recording_failed: bool
    input_recorded: bool
    output_chars: int
    input_chars: int


class TranscriptMatch(BaseModel):
    """A line of output (escape sequences removed) containing the searched text."""

    time_s: float
    line: str


class TerminalSearchResult(BaseModel):
    query: str
    matches: list[TranscriptMatch]
    truncated: bool
