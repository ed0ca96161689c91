"""row-level security on the tenant-owned tables (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Every table with a `tenant_id` column. A new tenant-owned table needs its own migration that
# adds it the same policy (tests/server/test_rls.py fails until it has one).
TENANT_OWNED_TABLES = (
    "users",
    "groups",
    "devices",
    "device_status",
    "device_metrics",
    "enrollment_pins",
    "agent_credentials",
    "commands",
    "audit_events",
)

POLICY = "tenant_isolation"
# The session sets both settings per transaction (`db/rls.py`). System work (the platform,
# the agent gateway, periodic jobs) passes explicitly; an unset tenant matches no row.
_CONDITION = (
    "current_setting('steward.system', true) = 'on' "
    "OR tenant_id = NULLIF(current_setting('steward.tenant_id', true), '')::uuid"
)


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _on_postgresql():
        return  # SQLite has no row-level security; the ORM filter is the only wall there
    for table in TENANT_OWNED_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        # FORCE: the table owner (the app's role) is held by the policy too. Superusers and
        # roles with BYPASSRLS still are not: the app must not run as one of them.
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {table} FOR ALL "
            f"USING ({_CONDITION}) WITH CHECK ({_CONDITION})"
        )


def downgrade() -> None:
    if not _on_postgresql():
        return
    for table in reversed(TENANT_OWNED_TABLES):
        op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
