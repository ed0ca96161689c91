"""The SQLite driver (`db/sqlite_driver.py`): one trip to the connection's thread per statement,
with what SQLAlchemy reads off a cursor (rows, rowcount, lastrowid, errors) intact; and no
route or dependency that FastAPI would run on its thread pool."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from steward.server.app import create_app
from steward.server.db.engine import create_engine
from tests.support import make_settings, run_async


def _engine_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"


def test_one_trip_to_the_thread_per_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)

    async def work() -> dict[str, Any]:
        engine = create_engine(_engine_url(tmp_path))
        try:
            async with engine.connect() as connection:
                await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
                await connection.commit()
                before = len(trips)
                await connection.execute(text("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')"))
                rows = (await connection.execute(text("SELECT v FROM t ORDER BY id"))).all()
                during = len(trips) - before  # BEGIN IMMEDIATE, INSERT, SELECT
                inserted = await connection.execute(text("INSERT INTO t (v) VALUES ('d')"))
                updated = await connection.execute(text("UPDATE t SET v = 'x' WHERE id <= 2"))
                many = await connection.execute(
                    text("INSERT INTO t (v) VALUES (:v)"), [{"v": "e"}, {"v": "f"}]
                )
                empty = await connection.execute(text("SELECT v FROM t WHERE id < 0"))
                await connection.commit()
                return {
                    "during": during,
                    "rows": [r.v for r in rows],
                    "lastrowid": inserted.lastrowid,
                    "updated": updated.rowcount,
                    "many": many.rowcount,
                    "empty": empty.all(),
                    "keys": list(empty.keys()),
                }
        finally:
            await engine.dispose()

    found = run_async(work)
    assert found["during"] == 3, trips  # aiosqlite's own adapter makes 4 trips per statement
    assert found["rows"] == ["a", "b", "c"]
    assert found["lastrowid"] == 4
    assert found["updated"] == 2
    assert found["many"] == 2
    assert found["empty"] == [] and found["keys"] == ["v"]


def test_errors_are_sqlalchemy_errors_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def work() -> list[Any]:
        engine = create_engine(_engine_url(tmp_path))
        try:
            async with engine.connect() as connection:
                await connection.execute(text("CREATE TABLE u (id INTEGER PRIMARY KEY)"))
                await connection.execute(text("INSERT INTO u (id) VALUES (1)"))
                await connection.commit()
                with pytest.raises(IntegrityError):
                    await connection.execute(text("INSERT INTO u (id) VALUES (1)"))
                await connection.rollback()
                return (await connection.execute(text("SELECT id FROM u"))).scalars().all()
        finally:
            await engine.dispose()

    assert run_async(work) == [1]


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Any]]:
    data = tmp_path_factory.mktemp("routes")
    app = create_app(make_settings(f"sqlite+aiosqlite:///{data / 'r.db'}", data))

    def routes_of(router: Any) -> Iterator[Any]:
        for route in router.routes:
            included = getattr(route, "original_router", None)
            yield from routes_of(included) if included is not None else [route]

    yield [r for r in routes_of(app.router) if getattr(r, "dependant", None) is not None]


def test_no_route_or_dependency_runs_on_the_thread_pool(app_routes: list[Any]) -> None:
    """FastAPI runs a plain `def` endpoint or dependency on a worker thread: a trip there and
    back on every request (it was `get_runtime`, on every route). Everything is `async def`."""
    assert len(app_routes) > 100
    sync: set[str] = set()

    def walk(dependant: Any, path: str) -> None:
        call = dependant.call
        asynchronous = inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
        if call is not None and not inspect.isclass(call) and not asynchronous:
            sync.add(f"{call.__module__}.{call.__qualname__} ({path})")
        for sub in dependant.dependencies:
            walk(sub, path)

    for route in app_routes:
        walk(route.dependant, route.path)
    assert not sync, sorted(sync)
