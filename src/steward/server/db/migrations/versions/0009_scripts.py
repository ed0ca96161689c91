"""script library: scripts and their immutable versions

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24

Both tables are tenant-owned and get the row-level security policy on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from steward.server.db.base import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

NEW_TENANT_OWNED_TABLES = ("scripts", "script_versions")
POLICY = "tenant_isolation"
_CONDITION = (
    "current_setting('steward.system', true) = 'on' "
    "OR tenant_id = NULLIF(current_setting('steward.tenant_id', true), '')::uuid"
)


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "scripts",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("interpreter", sa.String(length=16), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=254), server_default="", nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_scripts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scripts")),
        sa.UniqueConstraint("tenant_id", "name", name="uq_scripts_tenant_name"),
    )
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scripts_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "script_versions",
        sa.Column("script_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("interpreter", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("parameters", sa.JSON(), server_default="[]", nullable=False),
        sa.Column("created_by", sa.String(length=254), server_default="", nullable=False),
        sa.Column("note", sa.String(length=500), server_default="", nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["script_id"],
            ["scripts.id"],
            name=op.f("fk_script_versions_script_id_scripts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_script_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_script_versions")),
        sa.UniqueConstraint(
            "tenant_id", "script_id", "version", name="uq_script_versions_script_version"
        ),
    )
    with op.batch_alter_table("script_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_script_versions_tenant_id"), ["tenant_id"], unique=False
        )

    if _on_postgresql():
        for table in NEW_TENANT_OWNED_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {POLICY} ON {table} FOR ALL "
                f"USING ({_CONDITION}) WITH CHECK ({_CONDITION})"
            )


def downgrade() -> None:
    if _on_postgresql():
        for table in reversed(NEW_TENANT_OWNED_TABLES):
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    with op.batch_alter_table("script_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_script_versions_tenant_id"))
    op.drop_table("script_versions")
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scripts_tenant_id"))
    op.drop_table("scripts")
