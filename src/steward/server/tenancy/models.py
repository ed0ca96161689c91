from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, CreatedAt, TenantOwned, UUIDPrimaryKey

DEFAULT_GROUP = "all"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class Tenant(UUIDPrimaryKey, CreatedAt, Base):
    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=TenantStatus.ACTIVE)
    locale: Mapped[str] = mapped_column(String(8), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Profile: who the customer is and how to reach them. Free text, empty when unknown.
    business_registration_number: Mapped[str] = mapped_column(
        String(32), default="", server_default=""
    )
    contact_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="", server_default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    address: Mapped[str] = mapped_column(String(500), default="", server_default="")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")


class Group(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(100))

    def __repr__(self) -> str:
        return f"Group({self.name!r})"
