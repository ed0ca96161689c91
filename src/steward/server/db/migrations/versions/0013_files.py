"""files: tenant file policy, upload sessions, backups of devices' files

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from steward.server.db.base import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NEW_TENANT_OWNED_TABLES = ("file_policies", "file_uploads", "file_backups")
POLICY = "tenant_isolation"
_CONDITION = (
    "current_setting('steward.system', true) = 'on' "
    "OR tenant_id = NULLIF(current_setting('steward.tenant_id', true), '')::uuid"
)


def _tenant() -> sa.Column[uuid.UUID]:
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def _device() -> sa.Column[uuid.UUID]:
    return sa.Column(
        "device_id", sa.Uuid(), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "file_policies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        sa.Column("linux_roots", sa.JSON(), nullable=False),
        sa.Column("windows_roots", sa.JSON(), nullable=False),
        sa.Column("allow_system_dirs", sa.Boolean(), nullable=False),
        sa.Column("max_upload_bytes", sa.BigInteger(), nullable=False),
        sa.Column("max_editor_bytes", sa.Integer(), nullable=False),
        sa.Column("max_backup_bytes", sa.BigInteger(), nullable=False),
        sa.Column("backup_keep_versions", sa.Integer(), nullable=False),
        sa.Column("backup_keep_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(254), nullable=False),
        sa.UniqueConstraint("tenant_id", name="uq_file_policies_tenant"),
    )
    op.create_index("ix_file_policies_tenant_id", "file_policies", ["tenant_id"])
    op.create_table(
        "file_uploads",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _tenant(),
        _device(),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("overwrite", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_file_uploads_tenant_id", "file_uploads", ["tenant_id"])
    op.create_index("ix_file_uploads_device_id", "file_uploads", ["device_id"])
    op.create_index("ix_file_uploads_tenant_created", "file_uploads", ["tenant_id", "created_at"])
    op.create_table(
        "file_backups",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _tenant(),
        sa.Column(
            "group_id", sa.Uuid(), sa.ForeignKey("groups.id", ondelete="CASCADE"), nullable=False
        ),
        _device(),
        sa.Column("source_path", sa.String(4096), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("store_path", sa.String(500), nullable=False),
    )
    op.create_index("ix_file_backups_tenant_id", "file_backups", ["tenant_id"])
    op.create_index("ix_file_backups_group_id", "file_backups", ["group_id"])
    op.create_index("ix_file_backups_device_id", "file_backups", ["device_id"])
    op.create_index(
        "ix_file_backups_device_path", "file_backups", ["tenant_id", "device_id", "source_path"]
    )

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_OWNED_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {POLICY} ON {table} FOR ALL "
                f"USING ({_CONDITION}) WITH CHECK ({_CONDITION})"
            )


def downgrade() -> None:
    op.drop_table("file_backups")
    op.drop_table("file_uploads")
    op.drop_table("file_policies")
