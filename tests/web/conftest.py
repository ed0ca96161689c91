"""The console's test bench: a migrated, seeded database on SQLite and on PostgreSQL (copied
fresh for each test), the real app with its lifespan, and HTTP clients speaking to it
in-process. Builders and helpers are in `support.py`."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from steward.server.app import create_app
from steward.server.db.migrate import upgrade
from steward.server.runtime import Runtime
from steward.server.settings import Settings
from tests.support import Databases, run_async
from tests.web.support import SECRET_KEY, World, load_tenant, login, make_device, seed_accounts


@pytest.fixture(scope="session")
def seeded_database(
    databases: Databases, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Migrated once per backend, with the tenants and users of `ACCOUNTS` (password hashing
    is slow): an SQLite file, or a PostgreSQL database used as a template."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("web-seed") / "steward.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade(url)
    else:
        url = databases.create(backend)
    run_async(lambda: seed_accounts(url))
    return url


@pytest.fixture
def database_url(
    tmp_path: Path, seeded_database: str, databases: Databases, backend: str
) -> Iterator[str]:
    """A fresh copy of the seeded database for each test."""
    if backend == "sqlite":
        path = tmp_path / "steward.db"
        shutil.copyfile(seeded_database.removeprefix("sqlite+aiosqlite:///"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    yield databases.copy_of(seeded_database)


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[FastAPI]:
    settings = Settings(data_dir=tmp_path, database_url=database_url, secret_key=SECRET_KEY)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://acme.localhost") as http:
        yield http


@pytest.fixture
async def world(runtime: Runtime) -> World:
    acme, other = await load_tenant(runtime, "acme"), await load_tenant(runtime, "other")
    device_id = await make_device(
        runtime,
        acme,
        "lab-pc-01",
        metrics=5,
        os_version="24.04",
        cpu_model="Intel Core i5",
        cpu_cores=4,
        memory_total_bytes=8 * 1024**3,
        disks=[{"mountpoint": "/", "fstype": "ext4", "total_bytes": 100, "used_bytes": 80}],
        top_processes=[{"pid": 42, "name": "<b>python</b>", "cpu_percent": 3.5, "memory_bytes": 1}],
    )
    script_device_id = await make_device(runtime, acme, "<script>alert(1)</script>", online=False)
    await make_device(runtime, acme, "pharmacy-till-02")
    other_device_id = await make_device(runtime, other, "other-secret-host")
    return World(acme, other, device_id, script_device_id, other_device_id)


@pytest.fixture
async def admin(client: httpx.AsyncClient, world: World) -> httpx.AsyncClient:
    response = await login(client, "admin@acme.test")
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
async def viewer(client: httpx.AsyncClient, world: World) -> httpx.AsyncClient:
    response = await login(client, "viewer@acme.test")
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[Any]:
    """`await browser(email)`: a new client signed in as that user (its own cookies)."""
    clients: list[httpx.AsyncClient] = []

    async def open_as(email: str) -> httpx.AsyncClient:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://acme.localhost"
        )
        clients.append(http)
        assert (await login(http, email)).status_code == 303
        return http

    yield open_as
    for http in clients:
        await http.aclose()
