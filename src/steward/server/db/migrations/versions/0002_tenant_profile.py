"""tenant profile: registration number, contact, address, notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PROFILE_COLUMNS = (
    ("business_registration_number", sa.String(length=32)),
    ("contact_name", sa.String(length=200)),
    ("contact_phone", sa.String(length=32)),
    ("contact_email", sa.String(length=254)),
    ("address", sa.String(length=500)),
    ("notes", sa.Text()),
)


def upgrade() -> None:
    # Adding a column with a constant default is a plain ALTER TABLE on SQLite too: batch mode
    # does not rebuild the table. The server default fills in the existing rows.
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        for name, column_type in _PROFILE_COLUMNS:
            batch_op.add_column(sa.Column(name, column_type, nullable=False, server_default=""))


def downgrade() -> None:
    # Never rebuild `tenants` on SQLite: dropping the old table with foreign keys on would
    # cascade into every tenant-owned row. SQLite >= 3.35 drops a column in place.
    with op.batch_alter_table("tenants", schema=None, recreate="never") as batch_op:
        for name, _column_type in reversed(_PROFILE_COLUMNS):
            batch_op.drop_column(name)
