"""Which replica runs the cluster-wide periodic work (offline sweep, jobs and schedules,
retention): the one holding a PostgreSQL advisory lock.

The lock belongs to a database session, so it lives exactly as long as one dedicated
connection (kept apart from the request pool, which recycles its connections). When a replica
dies, PostgreSQL ends its session and frees the lock; another replica takes it at its next
check, a few seconds later. A leader that cannot reach its own session any more stops acting as
leader at once, since another replica may already hold the lock.

SQLite is one process by design: that process is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# One key for every replica of a deployment ("Steward1" in ASCII). Advisory locks are per
# database, so deployments sharing a PostgreSQL cluster do not contend for it.
LOCK_KEY = 0x5374657761726431

# The server notices a replica's machine vanishing (no FIN ever comes) after about
# idle + interval * count seconds, and only then frees the lock.
_KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}


class Leadership:
    """`is_leader` while this process holds the lock; re-checked every `check_interval_s`."""

    def __init__(self, database_url: str, check_interval_s: float = 5.0) -> None:
        self._url = database_url
        self._interval = check_interval_s
        self._single_process = make_url(database_url).get_backend_name() == "sqlite"
        self._leader = self._single_process
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self) -> None:
        """Try once at once (a lone replica leads from its first second), then keep checking."""
        if self._single_process:
            return
        self._engine = create_async_engine(
            self._url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",  # never idle in a transaction for hours
            connect_args={
                "timeout": self._interval,
                "command_timeout": self._interval,
                "server_settings": _KEEPALIVES,
            },
        )
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="leadership")

    async def stop(self) -> None:
        """Release the lock so that another replica takes over at its next check."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._connection is not None and self._leader:
            with contextlib.suppress(Exception):  # a dead session has released it already
                await asyncio.wait_for(
                    self._connection.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY}
                    ),
                    self._interval,
                )
            log.info("released leadership")
        if not self._single_process:
            self._leader = False
        await self._drop_connection()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def check(self) -> bool:
        """One round: take the lock when free, or confirm the session holding it still lives."""
        try:
            if self._leader:
                await self._query("SELECT 1")
            elif await self._query("SELECT pg_try_advisory_lock(:key)", key=LOCK_KEY):
                self._leader = True
                log.info("became leader")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever broke, this session cannot be trusted with the lock
            if self._leader:
                self._leader = False
                log.warning("lost leadership: %s", exc)
            else:
                log.debug("leadership check failed: %s", exc)
            await self._drop_connection()
        return self._leader

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def _query(self, statement: str, **params: object) -> object:
        assert self._engine is not None, "start() first"
        if self._connection is None:
            self._connection = await asyncio.wait_for(self._engine.connect(), self._interval)
        result = await asyncio.wait_for(
            self._connection.execute(text(statement), params), self._interval
        )
        return result.scalar()

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # it is being thrown away because it failed
                await asyncio.wait_for(connection.invalidate(), self._interval)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._interval)
