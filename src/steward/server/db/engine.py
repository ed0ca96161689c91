"""Async engine and session factory for SQLite (embedded, WAL) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from steward.server.db.sqlite_driver import one_hop_dbapi
from steward.server.db.tenant_filter import (
    SYSTEM_CONTEXT,
    TENANT_CONTEXT_KEY,
    install_tenant_filter,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, begin transactions (see `_sqlite_begin`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is
    # locked" when another connection wrote in between; the busy timeout cannot help it.
    # Taking the write lock up front makes concurrent writers wait their turn instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer at a time. One connection per process queues every transaction
        # in the pool, first come first served, instead of letting writers poll a busy lock
        # (which starves some of them past any timeout under load). Other processes (the CLI)
        # still wait their turn through BEGIN IMMEDIATE and the busy timeout.
        # One trip to the driver's thread per statement (db/sqlite_driver.py), not four.
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=30, module=one_hop_dbapi()
        )
        # An INSERT with many rows goes as a few multi-row statements, not one step per row:
        # sqlite3 takes the GIL back after every row, and while the event loop is busy (20,000
        # agents beating) each of those waits turned a 10,000-row flush from 0.2 s into 2 s.
        engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # pool_pre_ping: a restarted PostgreSQL costs one failed request, not a server restart.
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
    )


def create_session_factory(
    engine: AsyncEngine, *, system: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions without a tenant context (bind one per request), or with `system=True`
    sessions bound to system work from the start (see `tenant_filter`)."""
    info = {TENANT_CONTEXT_KEY: SYSTEM_CONTEXT} if system else {}
    factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)
    install_tenant_filter(factory)
    return factory


@asynccontextmanager
async def standalone_session(database_url: str) -> AsyncIterator[AsyncSession]:
    """One system session on a short-lived engine, for operator work outside a running server
    (CLI commands, set-up, tests). The caller commits."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine, system=True)() as session:
            yield session
    finally:
        await engine.dispose()
