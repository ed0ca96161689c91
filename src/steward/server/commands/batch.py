"""Group commit of what happens on agent connections: sends, acknowledgements, results.

A dispatch sent on a WebSocket, and every `command.ack` and `command.result` that comes back,
would each cost a transaction of their own; with thousands of agents answering a bulk job at
once the database would be the queue. Here they wait a few milliseconds in memory and are
written together, in one transaction for everything that arrived meanwhile: sends first, then
acknowledgements, then results, so that a command's history keeps its order.

A result waiting here is not stored yet. If the process dies before the commit, nothing is lost:
the command is still `sent` or `running` in the database, the agent's next connection is sent
every unfinished command again, and the agent's ledger answers with the result it kept instead
of running it twice (docs/protocol.md). An agent only ever touches its own commands: each entry
is checked against the device it came from.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, func, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from steward.protocol import CommandResult, CommandStatus
from steward.server.commands.models import Command
from steward.server.db.base import UTCDateTime, utcnow
from steward.server.jobs import lifecycle

log = logging.getLogger(__name__)
S = CommandStatus
_IN_FLIGHT = (S.QUEUED, S.SENT, S.RUNNING)
_CHUNK = 500  # ids per statement (PostgreSQL)
_JSON_IDS = 10_000  # ids per statement (SQLite: one JSON parameter)


@dataclass(frozen=True, slots=True)
class Entry:
    tenant_id: uuid.UUID
    device_id: uuid.UUID
    command_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Finished:
    entry: Entry
    job_id: uuid.UUID | None
    result: CommandResult


@dataclass(slots=True)
class Stored:
    """What one batch changed, for the work that follows a commit."""

    started: list[Entry] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)

    @property
    def job_ids(self) -> set[uuid.UUID]:
        return {f.job_id for f in self.finished if f.job_id is not None}


@dataclass(slots=True)
class _Batch:
    sent: list[Entry] = field(default_factory=list)
    acks: list[Entry] = field(default_factory=list)
    results: list[tuple[Entry, CommandResult]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.acks) + len(self.results)

    def take(self) -> _Batch:
        taken = _Batch(self.sent, self.acks, self.results)
        self.sent, self.acks, self.results = [], [], []
        return taken

    def put_back(self, failed: _Batch) -> None:
        self.sent[:0], self.acks[:0], self.results[:0] = failed.sent, failed.acks, failed.results


AfterCommit = Callable[[Stored], Awaitable[None]]


class DeliveryWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        window_s: float = 0.005,
        max_waiting: int = 200_000,
    ) -> None:
        self._sessions = sessions  # system sessions: commands of every tenant
        self._window_s = window_s  # how long the first arrival waits for company
        self._max_waiting = max_waiting
        self._batch = _Batch()
        self._arrived = asyncio.Event()
        self._lock = asyncio.Lock()
        self._has_room = asyncio.Event()
        self.after_commit: AfterCommit | None = None

    def __len__(self) -> int:
        return len(self._batch)

    # ---- called on the connections (memory only) ----------------------------------------------

    def sent(self, tenant_id: uuid.UUID, device_id: uuid.UUID, command_id: uuid.UUID) -> None:
        self._batch.sent.append(Entry(tenant_id, device_id, command_id))
        self._arrived.set()

    def ack(self, tenant_id: uuid.UUID, device_id: uuid.UUID, command_id: str) -> None:
        parsed = _parse(command_id)
        if parsed is not None:
            self._batch.acks.append(Entry(tenant_id, device_id, parsed))
            self._arrived.set()

    def result(self, tenant_id: uuid.UUID, device_id: uuid.UUID, result: CommandResult) -> None:
        parsed = _parse(result.command_id)
        if parsed is not None:
            self._batch.results.append((Entry(tenant_id, device_id, parsed), result))
            self._arrived.set()

    async def room(self) -> None:
        """Returns once there is room for more: while too much waits unwritten (the database is
        down or slow) the connections stop reading their agents, who wait."""
        while len(self._batch) >= self._max_waiting:
            self._has_room.clear()
            await self._has_room.wait()

    # ---- writing ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Write batches as they come, until cancelled."""
        failures = 0
        while True:
            await self._arrived.wait()
            await asyncio.sleep(self._window_s)
            try:
                await self.flush()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.warning("writing agent reports failed; retrying", exc_info=failures == 1)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def flush(self) -> Stored:
        """Write everything waiting now, in one transaction."""
        async with self._lock:
            self._arrived.clear()
            batch = self._batch.take()
            self._has_room.set()
            if not batch:
                return Stored()
            try:
                async with self._sessions() as session:
                    stored = await _write(session, batch)
                    await session.commit()
            except BaseException:
                self._batch.put_back(batch)
                self._arrived.set()
                raise
        if self.after_commit is not None and (stored.started or stored.finished):
            await self.after_commit(stored)
        return stored


def _parse(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _write(session: AsyncSession, batch: _Batch) -> Stored:
    ids = sorted(
        {e.command_id for e in batch.sent}
        | {e.command_id for e in batch.acks}
        | {e.command_id for e, _ in batch.results}
    )
    rows = await _lock_rows(session, ids)
    status = {command_id: row.status for command_id, row in rows.items()}

    def own(entry: Entry) -> bool:  # an agent only reports on its own device's commands
        row = rows.get(entry.command_id)
        return row is not None and row.device_id == entry.device_id

    now = utcnow()
    transitions: list[lifecycle.Change] = []

    def moved(entry: Entry, to: str, actor: str, note: str = "") -> None:
        status[entry.command_id] = to
        transitions.append((rows[entry.command_id].tenant_id, entry.command_id, to, actor, note))

    sent = [e for e in batch.sent if own(e) and status[e.command_id] == S.QUEUED]
    for entry in sent:
        moved(entry, S.SENT, lifecycle.SYSTEM)
    stored = Stored()
    for entry in batch.acks:
        if own(entry) and status[entry.command_id] in (S.QUEUED, S.SENT):
            moved(entry, S.RUNNING, lifecycle.AGENT)
            stored.started.append(entry)
    results: list[tuple[uuid.UUID, CommandResult]] = []
    for entry, result in batch.results:
        if not own(entry) or status[entry.command_id] not in _IN_FLIGHT:
            continue  # a repeat, a command cancelled meanwhile, or not this device's
        moved(entry, result.status, lifecycle.AGENT, result.error)
        stored.finished.append(Finished(entry, rows[entry.command_id].job_id, result))
        results.append((entry.command_id, result))

    await _set_status(session, [e.command_id for e in sent], S.SENT, sent_at=now)
    await _set_status(session, [e.command_id for e in stored.started], S.RUNNING, started_at=now)
    await _store_results(session, results, now)
    await lifecycle.insert_changes(session, transitions, now)
    return stored


async def _lock_rows(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The commands' owners and states, locked until the commit (PostgreSQL: FOR UPDATE, in id
    order so that two replicas never deadlock; SQLite: the transaction holds the write lock)."""
    rows: dict[uuid.UUID, Any] = {}
    connection = await session.connection()  # Core: no ORM work per row (thousands a batch)
    c = _COMMANDS.c
    for chunk in _id_chunks(connection, ids):
        query = (
            select(c.id, c.device_id, c.tenant_id, c.status, c.job_id)
            .where(_among(connection, c.id, chunk))
            .order_by(c.id)
            .with_for_update()
        )
        rows.update({row.id: row for row in await connection.execute(query)})
    return rows


def _id_chunks(connection: AsyncConnection, ids: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    size = _JSON_IDS if connection.dialect.name == "sqlite" else _CHUNK
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _among(connection: AsyncConnection, column: Any, ids: list[uuid.UUID]) -> Any:
    """`column IN (ids)`. SQLite: the ids as one JSON parameter (`json_each`), 10,000 in one
    statement without binding and processing a parameter each; else a plain IN list."""
    if connection.dialect.name != "sqlite":
        return column.in_(ids)
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam("ids", json.dumps([i.hex for i in ids]), unique=True))
    )
    return column.in_(listed.scalar_subquery())


async def _set_status(
    session: AsyncSession, ids: list[uuid.UUID], to: str, **values: object
) -> None:
    connection = await session.connection()
    for chunk in _id_chunks(connection, ids):
        await connection.execute(
            update(_COMMANDS)
            .where(_among(connection, _COMMANDS.c.id, chunk))
            .values(status=to, **values)
        )


async def _store_results(
    session: AsyncSession, results: list[tuple[uuid.UUID, CommandResult]], now: datetime
) -> None:
    """SQLite: one `UPDATE … FROM json_each(?)` per few thousand results. As one UPDATE per row
    (executemany) the driver's thread took the GIL back after every row, and waited for it
    while the event loop was busy. PostgreSQL: executemany (asyncpg pipelines the rows)."""
    if not results:
        return
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        await connection.execute(_STORE_RESULT, [_result_values(i, r, now) for i, r in results])
        return
    rows: list[list[Any]] = []
    size = 0
    for number, (command_id, r) in enumerate(results, 1):
        rows.append(
            [command_id.hex, r.status, r.exit_code, r.stdout, r.stderr,
             int(r.stdout_truncated), int(r.stderr_truncated), r.error]
        )  # fmt: skip
        size += len(r.stdout) + len(r.stderr) + len(r.error)
        if len(rows) == _JSON_ROWS or size >= _JSON_BYTES or number == len(results):
            await connection.execute(_SQLITE_STORE_RESULTS, {"rows": json.dumps(rows), "now": now})
            rows, size = [], 0


def _result_values(command_id: uuid.UUID, result: CommandResult, now: object) -> dict[str, Any]:
    return {
        "b_id": command_id,
        "b_status": result.status,
        "b_exit_code": result.exit_code,
        "b_stdout": result.stdout,
        "b_stderr": result.stderr,
        "b_stdout_truncated": result.stdout_truncated,
        "b_stderr_truncated": result.stderr_truncated,
        "b_error": result.error,
        "b_finished_at": now,
    }


_COMMANDS = cast(Table, Command.__table__)
# One cached statement, run with many parameter sets (executemany).
_STORE_RESULT = (
    update(_COMMANDS)
    .where(_COMMANDS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        exit_code=bindparam("b_exit_code"),
        stdout=bindparam("b_stdout"),
        stderr=bindparam("b_stderr"),
        stdout_truncated=bindparam("b_stdout_truncated"),
        stderr_truncated=bindparam("b_stderr_truncated"),
        error=bindparam("b_error"),
        finished_at=bindparam("b_finished_at"),
    )
)
_JSON_ROWS = 2000  # results per statement (one parameter: their JSON) ...
_JSON_BYTES = 8 * 1024 * 1024  # ... or fewer when they carry this much output
# SQLite keeps a UUID as 32 hex digits (SQLAlchemy's Uuid) and booleans as 0/1.
_SQLITE_STORE_RESULTS = text(
    """
    UPDATE commands SET
        status = r.status, exit_code = r.exit_code, stdout = r.stdout, stderr = r.stderr,
        stdout_truncated = r.stdout_truncated, stderr_truncated = r.stderr_truncated,
        error = r.error, finished_at = :now
    FROM (
        SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS status,
            json_extract(value, '$[2]') AS exit_code, json_extract(value, '$[3]') AS stdout,
            json_extract(value, '$[4]') AS stderr,
            json_extract(value, '$[5]') AS stdout_truncated,
            json_extract(value, '$[6]') AS stderr_truncated, json_extract(value, '$[7]') AS error
        FROM json_each(:rows)
    ) AS r
    WHERE commands.id = r.id
    """
).bindparams(bindparam("now", type_=UTCDateTime))
