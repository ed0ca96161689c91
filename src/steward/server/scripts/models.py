"""The tenant script library: scripts and their immutable versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
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


class Script(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """A named script. Its text lives in `ScriptVersion` rows; `latest_version` is the newest."""

    __tablename__ = "scripts"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_scripts_tenant_name"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    interpreter: Mapped[str] = mapped_column(String(16))
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(254), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ScriptVersion(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    """One saved text of a script, never changed: saving again makes version N+1."""

    __tablename__ = "script_versions"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "script_id", "version", name="uq_script_versions_script_version"
        ),
    )

    script_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("scripts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # Per version too: an old version runs with the interpreter it was written for.
    interpreter: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    # The declared parameters (`scripts.params.ParameterSpec`, as dicts), in order.
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )
    created_by: Mapped[str] = mapped_column(String(254), default="", server_default="")
    note: Mapped[str] = mapped_column(String(500), default="", server_default="")
