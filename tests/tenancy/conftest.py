"""Tenancy services are operator work across tenants (the CLI's): they run in system sessions."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture
def sessions(
    system_sessions: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    return system_sessions
