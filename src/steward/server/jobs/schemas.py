from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from steward.protocol import CommandType
from steward.server.commands.schemas import (
    MAX_EXPIRY_S,
    MAX_TIMEOUT_S,
    MIN_EXPIRY_S,
    ApprovalPublic,
    CommandSummary,
    normalised_payload,
)
from steward.server.jobs.targets import Target

_RATE = re.compile(r"([1-9][0-9]{0,4})(%?)")


class JobStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    DENIED = "denied"
    EXPIRED = "expired"
    SCHEDULED = "scheduled"  # approved (or not needing it), waiting for `run_at`
    RUNNING = "running"
    STOPPED = "stopped"  # the error threshold was reached: nothing more is dispatched
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in {
            JobStatus.DENIED,
            JobStatus.EXPIRED,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }


def rate(value: str, total: int) -> int:
    """`10` is ten devices, `25%` a quarter of `total` (rounded up, at least one)."""
    match = _RATE.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r}: a number of devices or a percentage such as 25%")
    number = int(match.group(1))
    if match.group(2):
        return max(1, -(-total * number // 100))
    return number


def _rate_text(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    match = _RATE.fullmatch(text)
    if match is None or (match.group(2) and int(match.group(1)) > 100):
        raise ValueError("a number of devices (1-99999) or a percentage (1%-100%)")
    return text


class JobSpec(BaseModel):
    """What a job runs, where, and how fast: also the template of a schedule."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    type: CommandType
    payload: dict[str, Any] = Field(default_factory=dict)
    target: Target
    max_concurrency: str = "100%"
    error_threshold: str | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_S)
    expires_in_s: float | None = Field(default=None, ge=MIN_EXPIRY_S, le=MAX_EXPIRY_S)

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: str | int) -> str:
        text = _rate_text(value)
        assert text is not None
        return text

    @field_validator("error_threshold", mode="before")
    @classmethod
    def _threshold(cls, value: str | int | None) -> str | None:
        return _rate_text(value)

    @model_validator(mode="after")
    def _payload_fits_type(self) -> JobSpec:
        self.payload = normalised_payload(self.type, self.payload)
        return self


class JobCreate(JobSpec):
    run_at: datetime | None = None  # run once at this time; now when absent

    @field_validator("run_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Excluded(BaseModel):
    device_id: uuid.UUID
    hostname: str
    reason: str


class JobCreated(BaseModel):
    id: uuid.UUID
    status: JobStatus
    total: int
    risk: str
    risk_reasons: list[str]
    approvals_needed: int
    excluded: list[Excluded] = []


class JobPublic(BaseModel):
    id: uuid.UUID
    name: str
    type: str
    payload: dict[str, object]
    target: dict[str, object]
    status: JobStatus
    created_by: str
    created_at: datetime
    risk: str
    risk_reasons: list[str]
    max_concurrency: str
    error_threshold: str | None
    timeout_s: float
    expiry_s: float
    total: int
    approvals_needed: int
    approval_expires_at: datetime | None
    run_at: datetime | None
    schedule_id: uuid.UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    stop_reason: str
    counts: dict[str, int] = {}


class JobDetail(JobPublic):
    approvals: list[ApprovalPublic] = []
    commands: list[CommandSummary] = []  # one page (`limit`, `offset`), by hostname
    commands_total: int = 0  # the job's commands on devices you reach, in all pages


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    cron: str = Field(min_length=9, max_length=100)
    job: JobSpec
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    cron: str | None = Field(default=None, min_length=9, max_length=100)
    job: JobSpec | None = None
    enabled: bool | None = None


class SchedulePublic(BaseModel):
    id: uuid.UUID
    name: str
    cron: str
    template: dict[str, object]
    created_by: str
    created_at: datetime
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: uuid.UUID | None
    last_error: str
