"""Alembic, driven from code (`steward db upgrade`, `steward demo`, tests)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _in_own_thread(work: Callable[[], None]) -> None:
    # env.py runs its own event loop; a thread keeps it apart from any loop the caller runs.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to `revision`."""
    _in_own_thread(lambda: command.upgrade(alembic_config(database_url), revision))


def check(database_url: str) -> None:
    """Raise if the models and the migrations disagree (`alembic check`)."""
    _in_own_thread(lambda: command.check(alembic_config(database_url)))
