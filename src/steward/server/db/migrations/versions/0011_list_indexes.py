"""indexes for lists at scale: devices by hostname, command history by time (tenant first)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Replaces the hostname-only index: every device list is scoped to one tenant.
    op.drop_index("ix_devices_hostname", table_name="devices")
    op.create_index("ix_devices_tenant_hostname", "devices", ["tenant_id", "hostname", "id"])
    op.create_index("ix_commands_tenant_created", "commands", ["tenant_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_commands_tenant_created", table_name="commands")
    op.drop_index("ix_devices_tenant_hostname", table_name="devices")
    op.create_index("ix_devices_hostname", "devices", ["hostname"])
