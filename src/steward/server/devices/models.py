from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from steward.server.db.base import (
    Base,
    BigIntId,
    CreatedAt,
    TenantOwned,
    UTCDateTime,
    UUIDPrimaryKey,
    utcnow,
)
from steward.server.tenancy.models import Group


class Device(UUIDPrimaryKey, TenantOwned, Base):
    """A managed machine: identity and static specs (updated by full heartbeats)."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "machine_id"),
        # the device list: first page and deep pages in hostname order, without a sort
        Index("ix_devices_tenant_hostname", "tenant_id", "hostname", "id"),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("groups.id"), index=True)
    machine_id: Mapped[str] = mapped_column(String(128))
    hostname: Mapped[str] = mapped_column(String(255))
    os_name: Mapped[str] = mapped_column(String(255), default="")
    os_version: Mapped[str] = mapped_column(String(255), default="")
    architecture: Mapped[str] = mapped_column(String(64), default="")
    cpu_model: Mapped[str] = mapped_column(String(255), default="")
    cpu_cores: Mapped[int] = mapped_column(Integer, default=0)
    memory_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    serial_number: Mapped[str] = mapped_column(String(255), default="")
    boot_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    top_processes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    inventory_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    group: Mapped[Group] = relationship(lazy="raise")
    status: Mapped[DeviceStatus | None] = relationship(lazy="raise", uselist=False)


class DeviceStatus(TenantOwned, Base):
    """Latest live state of a device: one row per device, upserted in batches."""

    __tablename__ = "device_status"
    __table_args__ = (
        Index("ix_device_status_tenant_online", "tenant_id", "online"),
        Index("ix_device_status_online_offline_after", "online", "offline_after"),
    )

    device_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # last_seen + missed intervals: past this, a silent device is offline
    offline_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cpu_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    ip_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    uptime_s: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    logged_in_users: Mapped[list[str]] = mapped_column(JSON, default=list)
    heartbeat_interval_s: Mapped[float] = mapped_column(Float, default=30.0)
    transport: Mapped[str] = mapped_column(String(8), default="")


class DeviceMetric(TenantOwned, Base):
    """History of the light heartbeat for charts (kept `metrics_retention_days`)."""

    __tablename__ = "device_metrics"
    __table_args__ = (Index("ix_device_metrics_tenant_device_at", "tenant_id", "device_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    device_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("devices.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    cpu_percent: Mapped[float] = mapped_column(Float)
    memory_percent: Mapped[float] = mapped_column(Float)


class EnrollmentPin(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """A short-lived, single-use PIN. Only its keyed hash is stored."""

    __tablename__ = "enrollment_pins"

    group_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("groups.id", ondelete="SET NULL"), nullable=True
    )
    pin_hash: Mapped[str] = mapped_column(String(64), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by_device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_by: Mapped[str] = mapped_column(String(254), default="")


class AgentCredential(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """The secret an enrolled agent authenticates with (stored as SHA-256: it is random)."""

    __tablename__ = "agent_credentials"

    device_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
