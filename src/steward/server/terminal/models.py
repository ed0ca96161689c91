"""Terminal sessions (one row per session, with its recording) and the tenant's terminal
policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, TenantOwned, UTCDateTime, UUIDPrimaryKey, utcnow


class SessionStatus(StrEnum):
    OPENING = "opening"  # the agent was asked; no `terminal.opened` yet
    OPEN = "open"
    CLOSED = "closed"  # ended (see `close_reason`)
    FAILED = "failed"  # never opened (offline agent, refused by the agent)


class CloseReason(StrEnum):
    EXITED = "exited"  # the shell ended
    USER = "user"  # its owner closed the page or the socket
    IDLE_TIMEOUT = "idle_timeout"
    MAX_DURATION = "max_duration"
    TERMINATED = "terminated"  # by an administrator
    FLOOD = "flood"  # the browser sent too much, too fast, or too many bad frames
    SLOW_CLIENT = "slow_client"  # the browser did not keep up with the output
    RECORDING_FAILED = "recording_failed"  # strict recording policy
    AGENT_DISCONNECTED = "agent_disconnected"
    OPEN_FAILED = "open_failed"
    SERVER_STOPPED = "server_stopped"
    SERVER_LOST = "server_lost"  # the replica holding it stopped without closing it


class RecordingFailurePolicy(StrEnum):
    STRICT = "strict"  # a session that cannot be recorded is closed
    BEST_EFFORT = "best_effort"  # it carries on unrecorded; the failure is audited


class TerminalSession(UUIDPrimaryKey, TenantOwned, Base):
    __tablename__ = "terminal_sessions"
    __table_args__ = (
        Index("ix_terminal_sessions_tenant_started", "tenant_id", "started_at"),
        Index("ix_terminal_sessions_device_started", "tenant_id", "device_id", "started_at"),
        Index("ix_terminal_sessions_user_started", "tenant_id", "user_id", "started_at"),
    )

    device_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("devices.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    user_email: Mapped[str] = mapped_column(String(254), default="")
    hostname: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.OPENING)
    close_reason: Mapped[str] = mapped_column(String(32), default="")
    closed_by: Mapped[str] = mapped_column(String(254), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(255), default="")
    cols: Mapped[int] = mapped_column(Integer, default=80)
    rows: Mapped[int] = mapped_column(Integer, default=24)
    shell: Mapped[str] = mapped_column(String(255), default="")
    run_as: Mapped[str] = mapped_column(String(64), default="")
    # The recording: `recording_path` in the store of group `recording_group_id`.
    recording_group_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    recording_path: Mapped[str] = mapped_column(String(512), default="")
    recording_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    recording_sha256: Mapped[str] = mapped_column(String(64), default="")
    recording_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    input_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    output_chars: Mapped[int] = mapped_column(BigInteger, default=0)
    input_chars: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    @property
    def live(self) -> bool:
        return self.status in (SessionStatus.OPENING, SessionStatus.OPEN)


class TerminalPolicy(UUIDPrimaryKey, TenantOwned, Base):
    """A tenant's terminal options. A tenant without a row has the defaults (`policy.py`)."""

    __tablename__ = "terminal_policies"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_terminal_policies_tenant"),)

    shell: Mapped[str] = mapped_column(String(255), default="")
    run_as: Mapped[str] = mapped_column(String(64), default="")
    idle_timeout_s: Mapped[int] = mapped_column(Integer)
    max_duration_s: Mapped[int] = mapped_column(Integer)
    record_input: Mapped[bool] = mapped_column(Boolean, default=False)
    recording_failure_policy: Mapped[str] = mapped_column(
        String(16), default=RecordingFailurePolicy.STRICT
    )
    require_step_up: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(254), default="")
