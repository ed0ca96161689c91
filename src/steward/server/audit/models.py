from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.audit.chain import GENESIS
from steward.server.db.base import Base, BigIntId, TenantOwned, UTCDateTime, utcnow


class AuditEvent(TenantOwned, Base):
    """One security-relevant event, kept in the tenant it concerns. Rows are only ever added.

    Each row commits to the one before it in its tenant (`prev_hash`, `hash`; audit/chain.py),
    so an edited, deleted or reordered row breaks the chain where it happened."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_at", "tenant_id", "at"),
        Index("ix_audit_events_tenant_device", "tenant_id", "device_id"),
        UniqueConstraint("tenant_id", "seq", name="uq_audit_events_tenant_seq"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    actor_name: Mapped[str] = mapped_column(String(254), default="", server_default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="", server_default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    result: Mapped[str] = mapped_column(String(16))
    risk: Mapped[str] = mapped_column(String(8), default="low")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The newest entry of each tenant's chain: where the next one links, and a check that
    rows were not cut off the end."""

    __tablename__ = "audit_heads"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    # Retention: entries up to `base_seq` were archived (to a file) and removed; the chain
    # now starts after the entry whose hash was `base_hash`.
    base_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    base_hash: Mapped[str] = mapped_column(String(64), default=GENESIS, server_default=GENESIS)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
