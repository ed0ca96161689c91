"""jobs, schedules, approvals, command transitions, device tags; command lifecycle columns

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from steward.server.db.base import BigIntId, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NEW_TENANT_OWNED_TABLES = ("schedules", "jobs", "approvals", "command_transitions", "device_tags")
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
        "schedules",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=False),
    )
    op.create_index("ix_schedules_tenant_id", "schedules", ["tenant_id"])
    op.create_index("ix_schedules_next_run_at", "schedules", ["next_run_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        _tenant(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("risk", sa.String(8), nullable=False),
        sa.Column("risk_reasons", sa.JSON(), nullable=False),
        sa.Column("max_concurrency", sa.String(8), nullable=False),
        sa.Column("error_threshold", sa.String(8), nullable=True),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("expiry_s", sa.Float(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("approval_expires_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("run_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "schedule_id",
            sa.Uuid(),
            sa.ForeignKey("schedules.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(255), nullable=False),
    )
    op.create_index("ix_jobs_tenant_id", "jobs", ["tenant_id"])
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant_id", "created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_schedule_id", "jobs", ["schedule_id"])

    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("approval_expires_at", UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("approvals_needed", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("cancel_requested_at", UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            "fk_commands_job_id_jobs", "jobs", ["job_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_commands_job_status", ["tenant_id", "job_id", "status"])
        batch_op.create_index("ix_commands_status_expires", ["status", "expires_at"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _tenant(),
        sa.Column(
            "command_id", sa.Uuid(), sa.ForeignKey("commands.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("approver", sa.String(254), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "command_id", "approver", name="uq_approvals_command_approver"
        ),
        sa.UniqueConstraint("tenant_id", "job_id", "approver", name="uq_approvals_job_approver"),
    )
    op.create_index("ix_approvals_tenant_id", "approvals", ["tenant_id"])
    op.create_index("ix_approvals_command_id", "approvals", ["command_id"])
    op.create_index("ix_approvals_job_id", "approvals", ["job_id"])
    op.create_table(
        "command_transitions",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        _tenant(),
        sa.Column(
            "command_id",
            sa.Uuid(),
            sa.ForeignKey("commands.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("note", sa.String(255), nullable=False),
    )
    op.create_index("ix_command_transitions_tenant_id", "command_transitions", ["tenant_id"])
    op.create_index(
        "ix_command_transitions_command", "command_transitions", ["tenant_id", "command_id", "id"]
    )
    op.create_table(
        "device_tags",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        _tenant(),
        sa.Column(
            "device_id", sa.Uuid(), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("tag", sa.String(64), nullable=False),
        sa.UniqueConstraint("tenant_id", "device_id", "tag", name="uq_device_tags_device_tag"),
    )
    op.create_index("ix_device_tags_tenant_id", "device_tags", ["tenant_id"])
    op.create_index("ix_device_tags_device_id", "device_tags", ["device_id"])
    op.create_index("ix_device_tags_tenant_tag", "device_tags", ["tenant_id", "tag"])

    if op.get_bind().dialect.name == "postgresql":
        for table in NEW_TENANT_OWNED_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {POLICY} ON {table} FOR ALL "
                f"USING ({_CONDITION}) WITH CHECK ({_CONDITION})"
            )


def downgrade() -> None:
    op.drop_table("device_tags")
    op.drop_table("command_transitions")
    op.drop_table("approvals")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index("ix_commands_status_expires")
        batch_op.drop_index("ix_commands_job_status")
        batch_op.drop_constraint("fk_commands_job_id_jobs", type_="foreignkey")
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("approvals_needed")
        batch_op.drop_column("approval_expires_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("job_id")
    op.drop_table("jobs")
    op.drop_table("schedules")
