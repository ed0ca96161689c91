"""What every command shares: one transaction per command, errors as `error (code): message`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.settings import Settings

T = TypeVar("T")

err = Console(stderr=True)


def run_with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work(session)` in one transaction, committed when it returns."""
    from steward.server.db.engine import standalone_session

    async def main() -> T:
        async with standalone_session(settings.effective_database_url) as session:
            result = await work(session)
            await session.commit()
            return result

    return asyncio.run(main())


def fail(exc: Exception) -> typer.Exit:
    from steward.server.errors import StewardError

    if isinstance(exc, StewardError):
        err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
    else:
        err.print(f"[red]error[/red]: {exc}")
    return typer.Exit(1)


def run_or_fail(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`run_with_session`, turning an error into a message and exit status 1."""
    try:
        return run_with_session(settings, work)
    except Exception as exc:
        raise fail(exc) from None
