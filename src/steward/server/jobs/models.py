"""Jobs (one command for many devices, with rate control), schedules, approvals, and the
history of every command's states."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import (
    Base,
    BigIntId,
    CreatedAt,
    TenantOwned,
    UTCDateTime,
    UUIDPrimaryKey,
    utcnow,
)


class Job(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """A command for a set of devices: one `Command` per device, released under its rate
    control (at most `max_concurrency` in flight; stop after `error_threshold` failures)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_status", "status"),
    )

    name: Mapped[str] = mapped_column(String(200), default="")
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(254), default="")
    risk: Mapped[str] = mapped_column(String(8), default="low")
    risk_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_concurrency: Mapped[str] = mapped_column(String(8), default="100%")
    error_threshold: Mapped[str | None] = mapped_column(String(8), nullable=True)
    timeout_s: Mapped[float] = mapped_column(Float)
    expiry_s: Mapped[float] = mapped_column(Float)  # each command's delivery deadline
    total: Mapped[int] = mapped_column(Integer, default=0)
    approvals_needed: Mapped[int] = mapped_column(Integer, default=0)
    approval_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("schedules.id", ondelete="SET NULL"), nullable=True, index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stop_reason: Mapped[str] = mapped_column(String(255), default="")


class Schedule(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """Creates a job from `template` at each time of `cron` (in the tenant's time zone), as
    `created_by`: that user's permissions and scope are checked again at every run."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(100))
    template: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(254))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    last_error: Mapped[str] = mapped_column(String(255), default="")


class Approval(UUIDPrimaryKey, TenantOwned, Base):
    """One approver's decision on a command or a job, with their comment."""

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "command_id", "approver", name="uq_approvals_command_approver"
        ),
        UniqueConstraint("tenant_id", "job_id", "approver", name="uq_approvals_job_approver"),
    )

    command_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("commands.id", ondelete="CASCADE"), nullable=True, index=True
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )
    approver: Mapped[str] = mapped_column(String(254))
    decision: Mapped[str] = mapped_column(String(8))  # approve | deny
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CommandTransition(TenantOwned, Base):
    """A command entered `status` at `at`, because of `actor` (a user, `agent`, `system`)."""

    __tablename__ = "command_transitions"
    __table_args__ = (Index("ix_command_transitions_command", "tenant_id", "command_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    command_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("commands.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(254), default="")
    note: Mapped[str] = mapped_column(String(255), default="")


class DeviceTag(TenantOwned, Base):
    """A label on a device (`lab-2`, `front-desk`), for targeting jobs."""

    __tablename__ = "device_tags"
    __table_args__ = (
        UniqueConstraint("tenant_id", "device_id", "tag", name="uq_device_tags_device_tag"),
        Index("ix_device_tags_tenant_tag", "tenant_id", "tag"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    device_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    tag: Mapped[str] = mapped_column(String(64))
