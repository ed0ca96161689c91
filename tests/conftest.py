from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from steward.server.accounts.models import LoginFailure
from steward.server.accounts.throttle import LoginThrottle
from steward.server.db.engine import standalone_session
from steward.server.ratelimit import SlidingWindowLimiter
from tests.support import (
    BACKENDS,
    Databases,
    LiveServer,
    Seeder,
    make_settings,
    require_redis,
    run_async,
)


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The test Redis; skipped without one, failed under CI=true."""
    return require_redis()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("databases"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(databases: Databases, backend: str) -> str:
    """One migrated database per backend per worker, for service-level tests."""
    return databases.create(backend)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from steward.server.db.engine import create_engine, create_session_factory

    engine = create_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def system_sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions for operator work across tenants (what the CLI and set-up use)."""
    from steward.server.db.engine import create_engine, create_session_factory

    engine = create_engine(database_url)
    try:
        yield create_session_factory(engine, system=True)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def server(
    databases: Databases, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A real server on its own fresh database, shared by the tests of one module."""
    url = databases.create(backend)
    settings = make_settings(url, tmp_path_factory.mktemp("data"), **_server_overrides())
    live = LiveServer(settings).start()
    yield live
    live.stop()


def _server_overrides() -> dict[str, object]:
    # Short intervals so that offline detection is observable within a test.
    return {
        "light_heartbeat_interval_s": 1.0,
        "watched_heartbeat_interval_s": 0.5,
        "offline_sweep_interval_s": 0.5,
        "status_flush_interval_s": 0.2,
        "job_sweep_interval_s": 0.5,
    }


@pytest.fixture(scope="module")
def seeder(server: LiveServer) -> Seeder:
    return Seeder(server.settings)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def _fresh_rate_limits(request: pytest.FixtureRequest) -> None:
    """Every test calls from 127.0.0.1; one test's failed PINs must not block the next."""
    if "server" in request.fixturenames:
        runtime = request.getfixturevalue("server").app.state.runtime
        runtime.pin_failures = SlidingWindowLimiter(runtime.settings.pin_failures_per_minute, 60.0)
        runtime.login_throttle = LoginThrottle()
        run_async(lambda: _forget_login_failures(runtime.settings.effective_database_url))


async def _forget_login_failures(database_url: str) -> None:
    async with standalone_session(database_url) as session:
        await session.execute(delete(LoginFailure))
        await session.commit()


@pytest.fixture
def cli_env(databases: Databases, backend: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `steward` CLI as a process against a fresh database."""
    return os.environ | {
        "STEWARD_DATABASE_URL": databases.create(backend),
        "STEWARD_DATA_DIR": str(tmp_path),
        "STEWARD_SECRET_KEY": "cli-test-secret",
    }
