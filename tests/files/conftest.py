from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.files.support import World, build_world, stop
from tests.support import LiveServer, Seeder


@pytest.fixture(scope="module")
def world(
    server: LiveServer, seeder: Seeder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A tenant with two real agents, each allowed its own directory (both in the policy)."""
    built = build_world(server, seeder, tmp_path_factory.mktemp("devices"))
    yield built
    for agent in built.agents:
        stop(agent)
