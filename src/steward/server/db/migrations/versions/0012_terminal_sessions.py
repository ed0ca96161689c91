"""terminal sessions and recordings; the tenant's terminal policy

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from steward.server.db.base import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NEW_TENANT_OWNED_TABLES = ("terminal_sessions", "terminal_policies")
POLICY = "tenant_isolation"
_CONDITION = (
    "current_setting('steward.system', true) = 'on' "
    "OR tenant_id = NULLIF(current_setting('steward.tenant_id', true), '')::uuid"
)


def _tenant() -> sa.Column[uuid.UUID]:
    return sa.Column(
        "tenant_id", sa.Uuid(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "terminal_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        sa.Column(
            "device_id", sa.Uuid(), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("user_email", sa.String(254), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("close_reason", sa.String(32), nullable=False),
        sa.Column("closed_by", sa.String(254), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(255), nullable=False),
        sa.Column("cols", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("shell", sa.String(255), nullable=False),
        sa.Column("run_as", sa.String(64), nullable=False),
        sa.Column("recording_group_id", sa.Uuid(), nullable=True),
        sa.Column("recording_path", sa.String(512), nullable=False),
        sa.Column("recording_bytes", sa.BigInteger(), nullable=False),
        sa.Column("recording_sha256", sa.String(64), nullable=False),
        sa.Column("recording_failed", sa.Boolean(), nullable=False),
        sa.Column("input_recorded", sa.Boolean(), nullable=False),
        sa.Column("output_chars", sa.BigInteger(), nullable=False),
        sa.Column("input_chars", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_terminal_sessions_tenant_id", "terminal_sessions", ["tenant_id"])
    op.create_index(
        "ix_terminal_sessions_tenant_started", "terminal_sessions", ["tenant_id", "started_at"]
    )
    op.create_index(
        "ix_terminal_sessions_device_started",
        "terminal_sessions",
        ["tenant_id", "device_id", "started_at"],
    )
    op.create_index(
        "ix_terminal_sessions_user_started",
        "terminal_sessions",
        ["tenant_id", "user_id", "started_at"],
    )
    op.create_table(
        "terminal_policies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        sa.Column("shell", sa.String(255), nullable=False),
        sa.Column("run_as", sa.String(64), nullable=False),
        sa.Column("idle_timeout_s", sa.Integer(), nullable=False),
        sa.Column("max_duration_s", sa.Integer(), nullable=False),
        sa.Column("record_input", sa.Boolean(), nullable=False),
        sa.Column("recording_failure_policy", sa.String(16), nullable=False),
        sa.Column("require_step_up", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(254), nullable=False),
        sa.UniqueConstraint("tenant_id", name="uq_terminal_policies_tenant"),
    )
    op.create_index("ix_terminal_policies_tenant_id", "terminal_policies", ["tenant_id"])

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_OWNED_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {POLICY} ON {table} FOR ALL "
                f"USING ({_CONDITION}) WITH CHECK ({_CONDITION})"
            )


def downgrade() -> None:
    op.drop_table("terminal_policies")
    op.drop_table("terminal_sessions")
