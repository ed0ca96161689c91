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
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
        with_sample: list[dict[str, Any]] = []
        presence: list[dict[str, Any]] = []
        offline_ids: list[uuid.UUID] = []
        history: list[dict[str, Any]] = []
        for device_id, entry in pending.items():
            if not entry.online:
                offline_ids.append(device_id)
                continue
            row: dict[str, Any] = {
                "device_id": device_id,
                "tenant_id": entry.tenant_id,
                "online": True,
                "last_seen": (last_seen := _instant(entry.last_seen)),
                "offline_after": last_seen + timedelta(seconds=entry.interval_s * self._missed + 1),
                "heartbeat_interval_s": entry.interval_s,
                "transport": entry.transport,
            }
            if entry.sample is None:
                presence.append(row)
                continue
            sample = entry.sample
            row.update(
                cpu_percent=sample.cpu_percent,
                memory_percent=sample.memory_percent,
                ip_addresses=list(sample.ip_addresses),
                uptime_s=sample.uptime_s,
                logged_in_users=list(sample.logged_in_users),
            )
            with_sample.append(row)
            if entry.point is not None:
                at, cpu, mem = entry.point
                history.append(
                    {
                        "tenant_id": entry.tenant_id,
                        "device_id": device_id,
                        "at": last_seen if at == entry.last_seen else _instant(at),
                        "cpu_percent": cpu,
                        "memory_percent": mem,
                    }
                )
        # Core executemany with one cached statement per shape: no ORM bookkeeping and no
        # compiling a fresh many-VALUES statement per batch.
        connection = await session.connection()
        for rows in (with_sample, presence):
            for start in range(0, len(rows), _CHUNK):
                await connection.execute(
                    _upsert(dialect, tuple(rows[0])), rows[start : start + _CHUNK]
                )
        for start in range(0, len(history), _CHUNK):
            await connection.execute(_METRICS_INSERT, history[start : start + _CHUNK])
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
def _upsert(dialect: str, columns: tuple[str, ...]) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(_STATUS_TABLE)
    return statement.on_conflict_do_update(
        index_elements=[_STATUS_TABLE.c.device_id],
        set_={column: statement.excluded[column] for column in columns if column != "device_id"},
    )
