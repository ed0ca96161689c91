"""Row-level security on PostgreSQL, the second wall behind the ORM tenant filter: every
tenant-owned table has the policy, a raw connection sees only the tenant it sets, and the
app's own sessions are held by it even with SQL the ORM filter never sees."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.protocol import EnrollRequest
from steward.server.accounts.models import Role
from steward.server.accounts.service import create_user
from steward.server.db.engine import standalone_session
from steward.server.db.models import Base
from steward.server.db.tenant_filter import bind_system, bind_tenant
from steward.server.devices import enrollment
from steward.server.devices.models import Device
from steward.server.tenancy.models import Tenant
from steward.server.tenancy.service import create_tenant
from tests.support import PG_HOST, PG_PORT, PG_USER

Sessions = async_sessionmaker[AsyncSession]
KEY = "rls-test-key"
PROBE_ROLE = "steward_rls_probe"
PROBED_TABLES = ("devices", "groups", "users")
TENANT_OWNED_TABLES = sorted(t.name for t in Base.metadata.tables.values() if "tenant_id" in t.c)


@pytest.fixture
def pg_url(backend: str, database_url: str) -> str:
    if backend != "postgresql":
        pytest.skip("row-level security is PostgreSQL only")
    return database_url


@dataclass(frozen=True)
class Pair:
    a: uuid.UUID
    b: uuid.UUID


async def _tenant_with_rows(session: AsyncSession) -> uuid.UUID:
    """A tenant with a group, a user and a device, built by the services."""
    slug = f"t{uuid.uuid4().hex[:8]}"
    tenant = await create_tenant(session, slug, slug.upper())
    await create_user(session, tenant, f"admin@{slug}.example", "correct-horse-battery", Role.ADMIN)
    pin, _row, _group = await enrollment.create_pin(
        session, KEY, tenant, group_name=None, ttl_s=600, created_by="test"
    )
    await enrollment.enroll(
        session, KEY, EnrollRequest(pin=pin, machine_id=uuid.uuid4().hex, hostname="h")
    )
    return tenant.id


@pytest.fixture
async def pair(pg_url: str) -> Pair:
    async with standalone_session(pg_url) as session:  # a system session
        a = await _tenant_with_rows(session)
        b = await _tenant_with_rows(session)
        await session.commit()
    return Pair(a, b)


@asynccontextmanager
async def _superuser(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection to the test database, past the app's sessions and their filter."""
    database = make_url(url).database
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
    )
    try:
        yield connection
    finally:
        await connection.close()


async def test_every_tenant_owned_table_has_the_policy(pg_url: str) -> None:
    assert {"devices", "groups", "users", "commands", "audit_events"} <= set(TENANT_OWNED_TABLES)
    async with _superuser(pg_url) as connection:
        flags = {
            row["relname"]: (row["relrowsecurity"], row["relforcerowsecurity"])
            for row in await connection.fetch(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relname = ANY($1::text[])",
                TENANT_OWNED_TABLES,
            )
        }
        policies = {
            row["tablename"]: row
            for row in await connection.fetch(
                "SELECT tablename, cmd, qual, with_check FROM pg_policies "
                "WHERE schemaname = 'public' AND policyname = 'tenant_isolation'"
            )
        }
    for table in TENANT_OWNED_TABLES:
        assert flags.get(table) == (True, True), f"{table}: row-level security not enabled+forced"
        policy = policies.get(table)
        assert policy is not None, f"{table}: no tenant_isolation policy"
        assert policy["cmd"] == "ALL"
        for clause in (policy["qual"], policy["with_check"]):
            assert "steward.system" in clause and "steward.tenant_id" in clause


async def _ensure_probe_role(connection: asyncpg.Connection) -> None:
    """An ordinary role (not the tables' owner, not a superuser) that RLS holds."""
    exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", PROBE_ROLE)
    if not exists:
        # parallel workers race here: the loser sees duplicate_object or unique_violation
        with suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await connection.execute(f"CREATE ROLE {PROBE_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS")
    tables = ", ".join(PROBED_TABLES)
    await connection.execute(f"GRANT SELECT, INSERT ON {tables} TO {PROBE_ROLE}")


async def _tenants_seen(
    connection: asyncpg.Connection, *, tenant: uuid.UUID | None = None, system: bool = False
) -> dict[str, set[uuid.UUID]]:
    async with connection.transaction():
        await connection.execute(f"SET LOCAL ROLE {PROBE_ROLE}")
        if tenant is not None:
            await connection.execute(
                "SELECT set_config('steward.tenant_id', $1, true)", str(tenant)
            )
        if system:
            await connection.execute("SELECT set_config('steward.system', 'on', true)")
        return {
            table: {row[0] for row in await connection.fetch(f"SELECT tenant_id FROM {table}")}
            for table in PROBED_TABLES
        }


async def test_a_raw_connection_sees_only_the_tenant_it_sets(pg_url: str, pair: Pair) -> None:
    async with _superuser(pg_url) as connection:
        await _ensure_probe_role(connection)

        as_b = await _tenants_seen(connection, tenant=pair.b)
        assert as_b == {table: {pair.b} for table in PROBED_TABLES}

        assert await _tenants_seen(connection) == {table: set() for table in PROBED_TABLES}

        as_system = await _tenants_seen(connection, system=True)
        for table in PROBED_TABLES:
            assert {pair.a, pair.b} <= as_system[table], table

        # WITH CHECK: bound to B, a row stamped with A's tenant is refused
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with connection.transaction():
                await connection.execute(f"SET LOCAL ROLE {PROBE_ROLE}")
                await connection.execute(
                    "SELECT set_config('steward.tenant_id', $1, true)", str(pair.b)
                )
                await connection.execute(
                    "INSERT INTO groups (id, tenant_id, name, created_at) "
                    "VALUES ($1, $2, 'smuggled', now())",
                    uuid.uuid4(),
                    pair.a,
                )


async def test_the_app_reaches_postgresql_as_a_role_that_rls_holds(pg_url: str) -> None:
    async with standalone_session(pg_url) as session:
        row = (
            await session.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, "
                    "(SELECT tableowner FROM pg_tables WHERE tablename = 'devices') = rolname "
                    "FROM pg_roles WHERE rolname = current_user"
                )
            )
        ).one()
    assert tuple(row) == (False, False, True)  # not exempt: the owner, held by FORCE


_RAW_TENANTS = text("SELECT DISTINCT tenant_id FROM devices")  # no ORM filter applies to text


async def test_the_second_wall_holds_sql_the_orm_filter_never_sees(
    pg_url: str, pair: Pair, sessions: Sessions
) -> None:
    async with sessions() as session:
        bind_tenant(session, pair.a)
        assert set(await session.scalars(_RAW_TENANTS)) == {pair.a}
        assert await session.scalar(text("SELECT count(*) FROM devices")) == 1

    # bound after the transaction began (a request reads its user first): set lazily
    async with sessions() as session:
        assert await session.get(Tenant, pair.b) is not None
        assert session.in_transaction()
        bind_tenant(session, pair.b)
        assert set(await session.scalars(_RAW_TENANTS)) == {pair.b}

    # unbound: the policy shows nothing, whatever a previous transaction on the connection set
    async with sessions() as session:
        assert set(await session.scalars(_RAW_TENANTS)) == set()

    async with sessions() as session:
        bind_system(session)
        assert {pair.a, pair.b} <= set(await session.scalars(_RAW_TENANTS))

    async with standalone_session(pg_url) as session:  # a system factory
        assert {pair.a, pair.b} <= set(await session.scalars(_RAW_TENANTS))


async def test_the_context_is_per_transaction(pg_url: str, pair: Pair, sessions: Sessions) -> None:
    async with sessions() as session:
        bind_tenant(session, pair.a)
        assert set(await session.scalars(_RAW_TENANTS)) == {pair.a}
        await session.commit()
        # a new transaction on the same session: set again when it begins
        assert set(await session.scalars(_RAW_TENANTS)) == {pair.a}
        # a Core statement on the session's own connection is held too
        connection = await session.connection()
        assert set((await connection.execute(_RAW_TENANTS)).scalars()) == {pair.a}

    # bound inside a savepoint that is then rolled back: rolling back undid the set_config,
    # and the next statement sets the context again
    async with sessions() as session:
        await session.get(Tenant, pair.b)
        savepoint = await session.begin_nested()
        bind_tenant(session, pair.b)
        assert set(await session.scalars(_RAW_TENANTS)) == {pair.b}
        await savepoint.rollback()
        assert set(await session.scalars(_RAW_TENANTS)) == {pair.b}

    # the ORM filter (the first wall) agrees
    async with sessions() as session:
        bind_tenant(session, pair.b)
        assert set(await session.scalars(select(Device.tenant_id))) == {pair.b}
