from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, BigIntId, TenantOwned, UTCDateTime, utcnow


class AuditEvent(TenantOwned, Base):
    """One security-relevant event, kept in the tenant it concerns. Rows are only ever added."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    result: Mapped[str] = mapped_column(String(16))
    risk: Mapped[str] = mapped_column(String(8), default="low")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
