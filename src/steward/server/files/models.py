"""File access: the tenant's policy, upload sessions (resumable), and backups of devices' files
kept in the tenant's store."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
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

from steward.server.db.base import (
    Base,
    CreatedAt,
    TenantOwned,
    UTCDateTime,
    UUIDPrimaryKey,
    utcnow,
)

MAX_PATH = 4096


class UploadStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    ABORTED = "aborted"  # by the operator
    EXPIRED = "expired"  # left open past `file_upload_expiry_s` (the periodic sweep)


class FilePolicy(UUIDPrimaryKey, TenantOwned, Base):
    """Where operators may reach on a tenant's devices and how much they may move. A tenant
    without a row has the defaults (`files/policy.py`)."""

    __tablename__ = "file_policies"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_file_policies_tenant"),)

    linux_roots: Mapped[list[str]] = mapped_column(JSON, default=list)
    windows_roots: Mapped[list[str]] = mapped_column(JSON, default=list)
    allow_system_dirs: Mapped[bool] = mapped_column(Boolean, default=False)
    max_upload_bytes: Mapped[int] = mapped_column(BigInteger)
    max_editor_bytes: Mapped[int] = mapped_column(Integer)
    max_backup_bytes: Mapped[int] = mapped_column(BigInteger)
    backup_keep_versions: Mapped[int] = mapped_column(Integer)
    backup_keep_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(254), default="")


class FileUpload(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """An upload to a device, chunk by chunk: the bytes go straight to the agent's partial
    file (named by this id); the row lets any replica carry on after a dropped connection."""

    __tablename__ = "file_uploads"
    __table_args__ = (Index("ix_file_uploads_tenant_created", "tenant_id", "created_at"),)

    device_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    path: Mapped[str] = mapped_column(String(MAX_PATH))
    size: Mapped[int] = mapped_column(BigInteger)
    overwrite: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=UploadStatus.OPEN)
    created_by: Mapped[str] = mapped_column(String(254), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")  # when done
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FileBackup(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """A version of a device's file or directory, copied into the tenant's store under
    `<group>/backups/<device>/<backup id>/`. `manifest` lists each file (relative path, size,
    SHA-256, the blob it is kept in) and directory."""

    __tablename__ = "file_backups"
    __table_args__ = (
        Index("ix_file_backups_device_path", "tenant_id", "device_id", "source_path"),
    )

    group_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    source_path: Mapped[str] = mapped_column(String(MAX_PATH))
    kind: Mapped[str] = mapped_column(String(8))  # file|dir
    reason: Mapped[str] = mapped_column(String(16), default="manual")  # manual|editor|restore
    created_by: Mapped[str] = mapped_column(String(254), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    file_count: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    store_path: Mapped[str] = mapped_column(String(500), default="")
