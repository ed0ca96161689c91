"""accounts and audit chain

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Users get scope and MFA columns; sessions, API tokens and login failures get tables; audit
events become a hash chain per tenant (existing rows are chained in order) and, on
PostgreSQL, append-only by trigger. New tenant-owned tables get the row-level security policy.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from steward.server.audit.chain import GENESIS, entry_hash
from steward.server.db.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NEW_TENANT_OWNED_TABLES = ("user_sessions", "api_tokens", "audit_heads")
POLICY = "tenant_isolation"
_CONDITION = (
    "current_setting('steward.system', true) = 'on' "
    "OR tenant_id = NULLIF(current_setting('steward.tenant_id', true), '')::uuid"
)
# Rows of audit_events are never changed; they are deleted only with their tenant or by
# retention, which set `steward.audit_purge` for their transaction.
_PG_APPEND_ONLY_FUNCTION = """
CREATE FUNCTION steward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('steward.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _chain_existing_events() -> None:
    """Number and chain the events recorded before the chain existed, in the order written."""
    events = sa.table(
        "audit_events",
        sa.column("id", sa.BigInteger()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("address", sa.String()),
        sa.column("action", sa.String()),
        sa.column("target", sa.String()),
        sa.column("result", sa.String()),
        sa.column("risk", sa.String()),
        sa.column("detail", sa.JSON()),
        sa.column("seq", sa.BigInteger()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    heads = sa.table(
        "audit_heads",
        sa.column("tenant_id", sa.Uuid()),
        sa.column("seq", sa.BigInteger()),
        sa.column("hash", sa.String()),
        sa.column("updated_at", UTCDateTime()),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(events).order_by(events.c.tenant_id, events.c.id)).all()
    chains: dict[object, tuple[int, str, object]] = {}
    for row in rows:
        seq, prev, _ = chains.get(row.tenant_id, (0, GENESIS, None))
        seq += 1
        digest = entry_hash(
            prev_hash=prev,
            tenant_id=row.tenant_id,
            seq=seq,
            at=row.at,
            actor=row.actor,
            actor_name="",
            address=row.address,
            user_agent="",
            action=row.action,
            target=row.target,
            device_id=None,
            result=row.result,
            risk=row.risk,
            detail=row.detail or {},
        )
        bind.execute(
            events.update()
            .where(events.c.id == row.id)
            .values(seq=seq, prev_hash=prev, hash=digest)
        )
        chains[row.tenant_id] = (seq, digest, row.at)
    for tenant_id, (seq, digest, at) in chains.items():
        bind.execute(
            heads.insert().values(tenant_id=tenant_id, seq=seq, hash=digest, updated_at=at)
        )


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_audit_heads_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_address", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_tokens_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index("ix_api_tokens_tenant_user", ["tenant_id", "user_id"], unique=False)
        batch_op.create_index("ix_api_tokens_token_hash", ["token_hash"], unique=True)

    op.create_table(
        "user_sessions",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.Column("mfa_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("mfa_setup_only", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_user_sessions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_user_sessions_tenant_user", ["tenant_id", "user_id"], unique=False
        )

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("actor_name", sa.String(length=254), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("user_agent", sa.String(length=300), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("device_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_events()
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_audit_events_tenant_device", ["tenant_id", "device_id"])
        batch_op.create_unique_constraint("uq_audit_events_tenant_seq", ["tenant_id", "seq"])

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("full_name", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("scope", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("mfa_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mfa_pending_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mfa_enabled_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("mfa_recovery_hashes", sa.JSON(), server_default="[]", nullable=False)
        )
        batch_op.add_column(
            sa.Column("password_changed_at", UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_login_at", UTCDateTime(timezone=True), nullable=True))

    if _on_postgresql():
        for table in NEW_TENANT_OWNED_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(
                f"CREATE POLICY {POLICY} ON {table} FOR ALL "
                f"USING ({_CONDITION}) WITH CHECK ({_CONDITION})"
            )
        op.execute(_PG_APPEND_ONLY_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION steward_audit_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )


def downgrade() -> None:
    if _on_postgresql():
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS steward_audit_append_only()")
        for table in reversed(NEW_TENANT_OWNED_TABLES):
            op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("last_login_at")
        batch_op.drop_column("password_changed_at")
        batch_op.drop_column("mfa_recovery_hashes")
        batch_op.drop_column("mfa_last_step")
        batch_op.drop_column("mfa_enabled_at")
        batch_op.drop_column("mfa_pending_secret")
        batch_op.drop_column("mfa_secret")
        batch_op.drop_column("scope")
        batch_op.drop_column("full_name")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_events_tenant_seq", type_="unique")
        batch_op.drop_index("ix_audit_events_tenant_device")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("device_id")
        batch_op.drop_column("user_agent")
        batch_op.drop_column("actor_name")
        batch_op.drop_column("seq")

    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_user_sessions_tenant_user")
        batch_op.drop_index(batch_op.f("ix_user_sessions_tenant_id"))

    op.drop_table("user_sessions")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_api_tokens_token_hash")
        batch_op.drop_index("ix_api_tokens_tenant_user")
        batch_op.drop_index(batch_op.f("ix_api_tokens_tenant_id"))

    op.drop_table("api_tokens")
    op.drop_table("audit_heads")
    op.drop_table("login_failures")
