from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, CreatedAt, TenantOwned, UTCDateTime, UUIDPrimaryKey


class Command(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """One command for one device. Committed before anyone is told about it."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_tenant_device_created", "tenant_id", "device_id", "created_at"),
        # the command history, newest first, keyset-paged on (created_at, id)
        Index("ix_commands_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_commands_device_status", "device_id", "status"),
        Index("ix_commands_job_status", "tenant_id", "job_id", "status"),
        Index("ix_commands_status_expires", "status", "expires_at"),
    )

    device_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("devices.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    timeout_s: Mapped[float] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    stdout_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    stderr_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    # commands/risk.py: how dangerous it looked when submitted, and why.
    risk: Mapped[str] = mapped_column(String(8), default="low", server_default="low")
    risk_reasons: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True
    )
    # Not delivered by then (still queued or held): expired. Approval must come by then too.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approval_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approvals_needed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
