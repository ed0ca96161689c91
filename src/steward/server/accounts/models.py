from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Boolean, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, CreatedAt, TenantOwned, UUIDPrimaryKey


class Role(StrEnum):
    ADMIN = "ADMIN"
    PM = "PM"
    ENGINEER = "ENGINEER"
    DEPLOY_ENGINEER = "DEPLOY_ENGINEER"
    VIEWER = "VIEWER"
    CUSTOMER = "CUSTOMER"


class User(UUIDPrimaryKey, CreatedAt, TenantOwned, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default=Role.VIEWER)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
