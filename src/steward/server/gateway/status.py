"""Write-behind of live device state.

Light heartbeats only touch memory; a flusher writes everything that changed in one transaction
per interval: the latest state upserted, and one history point per device per interval (the
newest sample: an agent beating faster than the flush, e.g. every 2 s while watched or in a
benchmark, adds no more rows than the charts can show). The offline sweep marks silent devices
offline with one UPDATE.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from steward.protocol import LightHeartbeat
from steward.server.db.base import utcnow
from steward.server.devices.models import Device, DeviceMetric, DeviceStatus

log = logging.getLogger(__name__)
_CHUNK = 500  # rows per statement: stays under SQLite's bound-parameter limit


@dataclass(slots=True)
class _Pending:
    tenant_id: uuid.UUID
    online: bool
    last_seen: float  # time.time(): a float is cheaper than a datetime per heartbeat
    interval_s: float
    transport: str
    sample: LightHeartbeat | None = None
    point: tuple[float, float, float] | None = None  # newest sample for the history


class StatusBuffer:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], missed_heartbeats_offline: int
    ) -> None:
        self._sessions = sessions
        self._missed = missed_heartbeats_offline
        self._pending: dict[uuid.UUID, _Pending] = {}
        self._inventory: dict[uuid.UUID, dict[str, Any]] = {}  # newest full heartbeat per device
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def seen(
        self,
        device_id: uuid.UUID,
        tenant_id: uuid.UUID,
        *,
        transport: str,
        interval_s: float,
        heartbeat: LightHeartbeat | None = None,
    ) -> None:
        now = time.time()
        entry = self._pending.get(device_id)
        if entry is None:
            entry = _Pending(tenant_id, True, now, interval_s, transport)
            self._pending[device_id] = entry
        entry.online, entry.last_seen = True, now
        entry.interval_s, entry.transport = interval_s, transport
        if heartbeat is not None:
            entry.sample = heartbeat
            entry.point = (now, heartbeat.cpu_percent, heartbeat.memory_percent)

    def inventory(self, device_id: uuid.UUID, values: dict[str, Any]) -> None:
        """A full heartbeat's specs and inventory (columns of `devices`), written with the
        next flush: after a restart thousands arrive at once, in one statement per 500."""
        self._inventory[device_id] = values | {"inventory_at": utcnow()}

    def offline(self, device_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        entry = self._pending.get(device_id)
        if entry is None:
            entry = _Pending(tenant_id, False, time.time(), 0, "")
            self._pending[device_id] = entry
        entry.online = False

    async def flush(self) -> int:
        """Write what changed since the last flush. Returns the number of devices written."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            inventory, self._inventory = self._inventory, {}
            if not pending and not inventory:
                return 0
            try:
                async with self._sessions() as session:
                    await self._write(session, pending)
                    await _write_inventory(session, inventory)
                    await session.commit()
            except Exception:
                # Keep what failed unless newer state arrived meanwhile; retried next interval.
                for device_id, entry in pending.items():
                    self._pending.setdefault(device_id, entry)
                for device_id, values in inventory.items():
                    self._inventory.setdefault(device_id, values)
                raise
            return len(pending)

    async def _write(self, session: AsyncSession, pending: dict[uuid.UUID, _Pending]) -> None:
        dialect = session.get_bind().dialect.name
        with_sample: list[_Row] = []
        presence: list[_Row] = []
        offline_ids: list[uuid.UUID] = []
        history: list[_Row] = []
        for device_id, entry in pending.items():
            if not entry.online:
                offline_ids.append(device_id)
                continue
            last_seen = entry.last_seen
            offline_after = last_seen + entry.interval_s * self._missed + 1
            row = (device_id, entry.tenant_id, last_seen, offline_after, entry.interval_s,
                   entry.transport)  # fmt: skip
            sample = entry.sample
            if sample is None:
                presence.append(row)
                continue
            with_sample.append(
                (*row, sample.cpu_percent, sample.memory_percent, list(sample.ip_addresses),
                 sample.uptime_s, list(sample.logged_in_users))
            )  # fmt: skip
            if entry.point is not None:
                history.append((entry.tenant_id, device_id, *entry.point))
        connection = await session.connection()
        if dialect == "sqlite":
            await _write_sqlite(connection, with_sample, presence, history)
        else:
            await _write_rows(connection, dialect, with_sample, presence, history)
        if offline_ids:
            await session.execute(
                update(DeviceStatus)
                .where(DeviceStatus.device_id.in_(offline_ids))
                .values(online=False)
            )

    async def sweep_offline(self) -> int:
        """Mark devices that missed their heartbeats offline. Returns how many."""
        async with self._sessions() as session:
            result = await session.execute(
                update(DeviceStatus)
                .where(DeviceStatus.online == true(), DeviceStatus.offline_after < utcnow())
                .values(online=False)
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _write_inventory(
    session: AsyncSession, inventory: dict[uuid.UUID, dict[str, Any]]
) -> None:
    rows = [{"b_id": device_id, **values} for device_id, values in inventory.items()]
    connection = await session.connection()
    for start in range(0, len(rows), _CHUNK):
        await connection.execute(_INVENTORY_UPDATE, rows[start : start + _CHUNK])


# (device_id, tenant_id, last_seen, offline_after, interval, transport[, cpu, memory, ips,
# uptime, users]) for device_status; (tenant_id, device_id, at, cpu, memory) for the history.
# Times are time.time() floats until written.
_Row = tuple[Any, ...]
_STATUS_KEYS = ("device_id", "tenant_id", "last_seen", "offline_after", "heartbeat_interval_s",
                "transport", "cpu_percent", "memory_percent", "ip_addresses", "uptime_s",
                "logged_in_users")  # fmt: skip
_HISTORY_KEYS = ("tenant_id", "device_id", "at", "cpu_percent", "memory_percent")


async def _write_rows(
    connection: AsyncConnection,
    dialect: str,
    with_sample: list[_Row],
    presence: list[_Row],
    history: list[_Row],
) -> None:
    """PostgreSQL: Core executemany, one cached statement per shape (asyncpg pipelines it)."""
    for rows in (with_sample, presence):
        if not rows:
            continue
        keys = _STATUS_KEYS[: len(rows[0])]
        statement = _upsert(dialect, keys)
        dicts = [
            dict(zip(keys, (r[0], r[1], _instant(r[2]), _instant(r[3]), *r[4:]), strict=True))
            | {"online": True}
            for r in rows
        ]
        for start in range(0, len(dicts), _CHUNK):
            await connection.execute(statement, dicts[start : start + _CHUNK])
    points = [
        dict(zip(_HISTORY_KEYS, (t, d, _instant(at), cpu, mem), strict=True))
        for t, d, at, cpu, mem in history
    ]
    for start in range(0, len(points), _CHUNK):
        await connection.execute(_METRICS_INSERT, points[start : start + _CHUNK])


async def _write_sqlite(
    connection: AsyncConnection, with_sample: list[_Row], presence: list[_Row], history: list[_Row]
) -> None:
    """SQLite: each kind of row in one statement reading a JSON array (`json_each`). With
    executemany every row's values went through SQLAlchemy's type processing, and the driver's
    thread took the GIL back after every row, waiting for it while the loop was busy: a 10,000
    row flush took over a second and fell behind the heartbeats."""
    for rows, statement in ((with_sample, _SQLITE_UPSERT_SAMPLE), (presence, _SQLITE_UPSERT)):
        for start in range(0, len(rows), _JSON_ROWS):
            chunk = [
                [r[0].hex, r[1].hex, _sqlite_time(r[2]), _sqlite_time(r[3]), *r[4:]]
                for r in rows[start : start + _JSON_ROWS]
            ]
            await connection.execute(statement, {"rows": json.dumps(chunk)})
    for start in range(0, len(history), _JSON_ROWS):
        chunk = [
            [t.hex, d.hex, _sqlite_time(at), cpu, mem]
            for t, d, at, cpu, mem in history[start : start + _JSON_ROWS]
        ]
        await connection.execute(_SQLITE_HISTORY, {"rows": json.dumps(chunk)})


def _sqlite_time(timestamp: float) -> str:
    """A time as SQLAlchemy stores a UTC DateTime in SQLite ("2026-11-23 09:00:05.123400").
    A flush's times fall within a few seconds: each second is formatted once."""
    seconds = int(timestamp)
    micro = round((timestamp - seconds) * 1e6)
    if micro == 1_000_000:
        seconds, micro = seconds + 1, 0
    return f"{_second(seconds)}.{micro:06d}"


@functools.lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _sqlite_json_rows(statement: str, count: int) -> Any:
    """`statement` with `$COLUMNS<count>` standing for the first `count` items of each row."""
    items = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(count))
    return text(statement.replace(f"$COLUMNS{count}", items))


_JSON_ROWS = 5000
# New rows get the defaults the ORM would give (empty lists); a conflict updates only what the
# heartbeat carries. `WHERE true`: SQLite's parser needs it before ON CONFLICT after a SELECT.
_SQLITE_UPSERT = _sqlite_json_rows(
    """
    INSERT INTO device_status (device_id, tenant_id, last_seen, offline_after,
        heartbeat_interval_s, transport, online, ip_addresses, logged_in_users)
    SELECT $COLUMNS6, 1, '[]', '[]' FROM json_each(:rows) WHERE true
    ON CONFLICT (device_id) DO UPDATE SET online = 1, last_seen = excluded.last_seen,
        offline_after = excluded.offline_after,
        heartbeat_interval_s = excluded.heartbeat_interval_s, transport = excluded.transport
    """,
    6,
)
_SQLITE_UPSERT_SAMPLE = _sqlite_json_rows(
    """
    INSERT INTO device_status (device_id, tenant_id, last_seen, offline_after,
        heartbeat_interval_s, transport, cpu_percent, memory_percent, ip_addresses, uptime_s,
        logged_in_users, online)
    SELECT $COLUMNS11, 1 FROM json_each(:rows) WHERE true
    ON CONFLICT (device_id) DO UPDATE SET online = 1, last_seen = excluded.last_seen,
        offline_after = excluded.offline_after,
        heartbeat_interval_s = excluded.heartbeat_interval_s, transport = excluded.transport,
        cpu_percent = excluded.cpu_percent, memory_percent = excluded.memory_percent,
        ip_addresses = excluded.ip_addresses, uptime_s = excluded.uptime_s,
        logged_in_users = excluded.logged_in_users
    """,
    11,
)
_SQLITE_HISTORY = _sqlite_json_rows(
    """
    INSERT INTO device_metrics (tenant_id, device_id, at, cpu_percent, memory_percent)
    SELECT $COLUMNS5 FROM json_each(:rows)
    """,
    5,
)


def _instant(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


_DEVICES = cast(Table, Device.__table__)
INVENTORY_COLUMNS = (
    "hostname", "os_name", "os_version", "architecture", "cpu_model", "cpu_cores",
    "memory_total_bytes", "serial_number", "boot_time", "disks", "top_processes", "inventory_at",
)  # fmt: skip
_INVENTORY_UPDATE = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("b_id"))
    .values({column: bindparam(column) for column in INVENTORY_COLUMNS})
)
_STATUS_TABLE = cast(Table, DeviceStatus.__table__)
_METRICS_INSERT = insert(cast(Table, DeviceMetric.__table__))


@functools.cache
def _upsert(dialect: str, keys: tuple[str, ...]) -> Any:
    columns = (*keys, "online")
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(_STATUS_TABLE)
    return statement.on_conflict_do_update(
        index_elements=[_STATUS_TABLE.c.device_id],
        set_={column: statement.excluded[column] for column in columns if column != "device_id"},
    )
