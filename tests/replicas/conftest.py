"""The `cluster` fixture: two real replicas on PostgreSQL and Redis (see cluster.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.replicas.cluster import Cluster, health, replica_settings
from tests.support import Databases, LiveServer, wait_for


@pytest.fixture(scope="module")
def cluster(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[Cluster]:
    database_url = databases.create("postgresql")
    secret = "test-secret-" + uuid.uuid4().hex
    prefix = f"steward-test-{uuid.uuid4().hex[:12]}"
    settings = [
        replica_settings(database_url, tmp_path_factory.mktemp(name), redis_url, secret, prefix)
        for name in ("replica-a", "replica-b")
    ]
    client = redis.Redis.from_url(redis_url)
    with contextlib.ExitStack() as stack:
        a = LiveServer(settings[0]).start()
        stack.callback(a.stop)
        b = LiveServer(settings[1]).start()
        stack.callback(b.stop)
        wait_for(lambda: health(a)["bus"] == "redis" and health(b)["bus"] == "redis")
        yield Cluster(a, b, database_url, secret, prefix, client)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
