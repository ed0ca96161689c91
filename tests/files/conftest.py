from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _server_overrides
from tests.files.support import World, build_world, stop
from tests.support import Databases, LiveServer, Seeder, make_settings


@pytest.fixture(scope="module")
def server(
    databases: Databases, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The shared live server, with the files sweep every half second (the tests age rows in
    the database and watch the sweep act on them)."""
    url = databases.create(backend)
    overrides = _server_overrides() | {"file_sweep_interval_s": 0.5}
    settings = make_settings(url, tmp_path_factory.mktemp("data"), **overrides)
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def world(
    server: LiveServer, seeder: Seeder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A tenant with two real agents, each allowed its own directory (both in the policy)."""
    built = build_world(server, seeder, tmp_path_factory.mktemp("devices"))
    yield built
    for agent in built.agents:
        stop(agent)
