"""Two replicas (A and B) on one PostgreSQL database and one Redis, each test module under its
own Redis key prefix, and the helpers the replica tests share. The `cluster` fixture itself is
in conftest.py."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from websockets.sync.client import ClientConnection, connect

from steward.server.settings import Settings
from tests.support import LiveServer, SeededTenant, Seeder, agent_auth, enroll


@dataclass
class Cluster:
    a: LiveServer
    b: LiveServer
    database_url: str
    secret: str
    prefix: str
    redis: redis.Redis

    def presence(self, device_id: str) -> str | None:
        value = self.redis.get(f"{self.prefix}:presence:{device_id}")
        return value.decode() if isinstance(value, bytes) else value


def replica_settings(
    database_url: str, data_dir: Path, redis_url: str, secret: str, prefix: str
) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=secret,  # replicas share their secret, as in production
        redis_url=redis_url,
        redis_prefix=prefix,
        presence_flush_interval_s=0.2,
        tenant_cache_ttl_s=300.0,  # only the bus can make a change reach B in time
        status_flush_interval_s=0.2,
    )


def health(server: LiveServer) -> dict[str, object]:
    response = httpx.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


@contextlib.contextmanager
def agent(ws_url: str, creds: dict[str, str]) -> Iterator[ClientConnection]:
    with connect(ws_url, additional_headers=agent_auth(creds), open_timeout=10) as ws:
        ws.send(json.dumps({"type": "hello", "agent_version": "9.9", "hostname": "pc-shared"}))
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome", welcome
        yield ws


def tenant_and_agent(server: LiveServer) -> tuple[SeededTenant, dict[str, str]]:
    seeder = Seeder(server.settings)
    tenant = seeder.tenant()
    return tenant, enroll(server, seeder.pin(tenant))


def connected_to(api: httpx.Client, device_id: str) -> object:
    response = api.get(f"/api/v1/devices/{device_id}")
    assert response.status_code == 200, response.text
    return response.json()["connected_to"]


def client_from(server: LiveServer, slug: str, address: str, **headers: str) -> httpx.Client:
    """A client on the tenant's host whose connections come from `address` (127.0.0.0/8)."""
    return httpx.Client(
        base_url=server.url,
        timeout=10,
        transport=httpx.HTTPTransport(local_address=address),
        headers={"Host": f"{slug}.localhost:{server.port}"} | headers,
    )
