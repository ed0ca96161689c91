"""The console's test bench (tests/web/conftest.py): a fresh seeded database for each test, on
SQLite and PostgreSQL, the real app and in-process clients."""

from tests.web.conftest import (  # noqa: F401 - fixtures
    admin,
    app,
    client,
    database_url,
    runtime,
    seeded_database,
    viewer,
    world,
)
