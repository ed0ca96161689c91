from __future__ import annotations

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from steward.server.db.base import Base, CreatedAt, UUIDPrimaryKey


class PlatformAdmin(UUIDPrimaryKey, CreatedAt, Base):
    """Not a tenant role: a platform administrator belongs to no tenant."""

    __tablename__ = "platform_admins"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
