"""State the replicas share: presence, rate limits, web sessions, the tenant cache.

Two real servers (A and B) on one PostgreSQL database and one Redis, each test run under its
own Redis key prefix (parallel runs do not meet); a third server, a real `steward serve`
process, is killed to show that a dead replica's presence expires. Redis is expected at
127.0.0.1:6379 (STEWARD_TEST_REDIS_URL to change it); without Redis or PostgreSQL these tests
are skipped, except under CI=true where they fail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio
from websockets.exceptions import ConnectionClosed

from steward.server.bus.presence import RedisPresence
from steward.server.bus.store import redis_client
from steward.server.ratelimit import make_limiter
from tests.replicas.cluster import (
    Cluster,
    agent,
    client_from,
    connected_to,
    health,
    replica_settings,
    tenant_and_agent,
)
from tests.support import (
    Databases,
    LiveServer,
    Seeder,
    closed_port_redis_url,
    free_port,
    login,
    tenant_client,
    wait_for,
)

# ---- presence ------------------------------------------------------------------------------


def test_every_replica_knows_which_replica_holds_an_agent(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    replica_a, replica_b = health(a)["replica"], health(b)["replica"]
    assert isinstance(replica_a, str) and replica_a != replica_b
    tenant, creds = tenant_and_agent(a)
    device_id = creds["device_id"]
    with login(b, tenant) as api_b:
        assert connected_to(api_b, device_id) is None
        with agent(a.ws_url, creds):
            started = time.monotonic()
            wait_for(lambda: connected_to(api_b, device_id) == replica_a, timeout=5)
            print(f"\npresence: B saw the agent on A after {time.monotonic() - started:.2f} s")
            assert cluster.presence(device_id) == replica_a
            ttl_ms = cluster.redis.pttl(f"{cluster.prefix}:presence:{device_id}")
            assert 0 < ttl_ms <= 30_000  # it expires unless A renews it
        wait_for(lambda: cluster.presence(device_id) is None, timeout=5)
        assert connected_to(api_b, device_id) is None


def test_a_replica_killed_without_goodbye_loses_its_agents_when_their_keys_expire(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    env = os.environ | {
        "STEWARD_DATABASE_URL": cluster.database_url,
        "STEWARD_DATA_DIR": str(tmp_path),
        "STEWARD_SECRET_KEY": cluster.secret,
        "STEWARD_REDIS_URL": cluster.a.settings.redis_url,
        "STEWARD_REDIS_PREFIX": cluster.prefix,
        "STEWARD_PRESENCE_TTL_S": "2",
        "STEWARD_PRESENCE_FLUSH_INTERVAL_S": "0.2",
        "STEWARD_LOG_LEVEL": "warning",
    }
    argv = [sys.executable, "-m", "steward.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/healthz"), timeout=30, interval=0.2)
        replica_c = httpx.get(f"{url}/healthz", timeout=5).json()["replica"]
        _tenant, creds = tenant_and_agent(cluster.a)
        ws_url = f"ws://127.0.0.1:{port}/api/agent/v1/ws"
        with contextlib.suppress(ConnectionClosed, OSError), agent(ws_url, creds):
            wait_for(lambda: cluster.presence(creds["device_id"]) == replica_c, timeout=5)
            time.sleep(2.5)  # longer than the expiry: C renews its key
            assert cluster.presence(creds["device_id"]) == replica_c
            process.send_signal(signal.SIGKILL)  # no clean unregister
            process.wait(10)
            killed = time.monotonic()
            assert cluster.presence(creds["device_id"]) == replica_c  # still there ...
            wait_for(lambda: cluster.presence(creds["device_id"]) is None, timeout=4)
            print(f"\npresence: a killed replica's key expired {time.monotonic() - killed:.1f} s")
        assert cluster.presence(creds["device_id"]) is None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ---- rate limits -----------------------------------------------------------------------------


def test_wrong_pins_spread_over_the_replicas_meet_one_limit(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="steward.server.gateway.routes")
    address = "127.0.0.3"  # its own address: other tests still enroll from 127.0.0.1
    limit = cluster.a.settings.pin_failures_per_minute
    codes = []
    for attempt in range(limit + 3):
        server = (cluster.a, cluster.b)[attempt % 2]
        with httpx.Client(transport=httpx.HTTPTransport(local_address=address)) as http:
            response = http.post(
                f"{server.url}/api/agent/v1/enroll",
                json={"pin": f"00000{attempt % 10}", "machine_id": "m", "hostname": "h"},
                timeout=10,
            )
        codes.append((response.status_code, response.json()["error"]["code"]))
        if response.status_code == 429:
            assert 0 < int(response.headers["retry-after"]) <= 60
    assert codes[:limit] == [(401, "pin_invalid")] * limit
    assert codes[limit:] == [(429, "rate_limited")] * 3  # on both replicas
    refusals = [r for r in caplog.records if "too many wrong PINs from 127.0.0.3" in r.message]
    assert refusals, "the refusals were not logged"


# ---- sessions and the tenant cache -------------------------------------------------------------


def test_a_session_made_on_a_works_on_b_and_ends_everywhere_on_logout(cluster: Cluster) -> None:
    tenant = Seeder(cluster.a.settings).tenant()
    with login(cluster.a, tenant) as api_a:
        token = api_a.headers["Authorization"]
        with tenant_client(cluster.b, tenant.slug, Authorization=token) as api_b:
            assert api_b.get("/api/v1/devices").status_code == 200
            assert api_a.post("/api/v1/auth/logout").status_code == 204
            refused = api_b.get("/api/v1/devices")
            assert refused.status_code == 401, refused.text


def test_a_tenant_change_made_on_a_reaches_b_at_once(cluster: Cluster) -> None:
    tenant = Seeder(cluster.a.settings).tenant()
    resolver_b = cluster.b.app.state.runtime.tenants
    with login(cluster.b, tenant) as api_b:
        assert api_b.get("/api/v1/devices").status_code == 200  # B has cached the tenant
        lookups = resolver_b.lookups
        assert api_b.get("/api/v1/devices").status_code == 200
        assert resolver_b.lookups == lookups  # ... and trusts its cache for 300 s
        with client_from(cluster.a, tenant.slug, "127.0.0.2") as anonymous:
            signed_in = anonymous.post(
                "/api/v1/auth/login",
                json={"email": tenant.admin_email, "password": tenant.password},
            )
        assert signed_in.status_code == 200, signed_in.text
        bearer = f"Bearer {signed_in.json()['access_token']}"
        with client_from(cluster.a, tenant.slug, "127.0.0.2", Authorization=bearer) as admin_a:
            changed = admin_a.put("/api/v1/tenant/security", json={"ip_allowlist": ["127.0.0.2"]})
            assert changed.status_code == 200, changed.text
        started = time.monotonic()
        refused = wait_for(
            lambda: (r := api_b.get("/api/v1/devices")).status_code == 403 and r, timeout=2
        )
        print(f"\ntenant cache: B applied A's change after {time.monotonic() - started:.2f} s")
        assert refused.json()["error"]["code"] == "address_not_allowed"
    with client_from(cluster.b, tenant.slug, "127.0.0.2", Authorization=bearer) as allowed_b:
        assert allowed_b.get("/api/v1/devices").status_code == 200


# ---- the parts alone, against the real Redis -------------------------------------------------


def patient_client(url: str) -> redis.asyncio.Redis:
    """A client for the parts' logic: on a machine loaded by the rest of the suite a connect
    can take longer than the server's one-second budget (seen once in CI), which is not what
    these tests are about."""
    return redis.asyncio.Redis.from_url(url, socket_connect_timeout=15, socket_timeout=15)


async def test_an_agent_that_moved_is_never_taken_back(redis_url: str) -> None:
    prefix = f"steward-test-{uuid.uuid4().hex[:12]}"
    first = RedisPresence(patient_client(redis_url), prefix=prefix, ttl_s=30)
    second = RedisPresence(patient_client(redis_url), prefix=prefix, ttl_s=30)
    device = uuid.uuid4()
    try:
        first.connected(device)
        await first.flush()
        assert await second.replicas_of([device]) == {device: first.replica_id}
        second.connected(device)  # the agent reconnected through the other replica
        await second.flush()
        first.disconnected(device)  # ... before the first noticed its old socket was dead
        await first.flush()
        assert await first.replicas_of([device]) == {device: second.replica_id}
        first.connected(device)
        first.disconnected(device)
        await first.flush()
        assert await first.replicas_of([device]) == {device: second.replica_id}
    finally:
        await first.stop()
        await second.stop()
    async with patient_client(redis_url) as client:
        assert await client.exists(first.key(device)) == 0  # a clean stop released it


async def test_presence_of_twenty_thousand_agents_costs_little(redis_url: str) -> None:
    prefix = f"steward-test-{uuid.uuid4().hex[:12]}"
    presence = RedisPresence(patient_client(redis_url), prefix=prefix, ttl_s=30)
    devices = [uuid.uuid4() for _ in range(20_000)]
    try:
        started = time.perf_counter()
        for device in devices:
            presence.connected(device)
        hub_s = time.perf_counter() - started
        started = time.perf_counter()
        await presence.flush()  # every connect, and the first renewal
        storm_s = time.perf_counter() - started
        started = time.perf_counter()
        await presence._renew()  # what each renewal (every ttl/3 = 10 s) costs
        renew_s = time.perf_counter() - started
        started = time.perf_counter()
        found = await presence.replicas_of(devices)
        lookup_s = time.perf_counter() - started
        print(
            f"\npresence, 20,000 agents: {hub_s * 1e9 / len(devices):.0f} ns per connect in the "
            f"hub; connect storm flushed in {storm_s * 1000:.0f} ms; renewal "
            f"{renew_s * 1000:.0f} ms every 10 s; "
            f"lookup of all {lookup_s * 1000:.0f} ms"
        )
        assert len(found) == len(devices) and set(found.values()) == {presence.replica_id}
        assert storm_s < 10 and renew_s < 10  # gross regressions only: figures are printed
    finally:
        await presence.stop()


async def test_limiters_on_two_replicas_share_their_counts(redis_url: str) -> None:
    prefix = f"steward-test-{uuid.uuid4().hex[:12]}"
    async with patient_client(redis_url) as client_a, patient_client(redis_url) as client_b:
        a = make_limiter("pin", 3, 60.0, client_a, prefix)
        b = make_limiter("pin", 3, 60.0, client_b, prefix)
        for limiter in (a, b, a):
            assert not await b.exceeded("198.51.100.7")
            await limiter.hit("198.51.100.7")
        assert await a.exceeded("198.51.100.7") and await b.exceeded("198.51.100.7")
        assert 55 <= await b.retry_after_s("198.51.100.7") <= 60
        assert not await a.exceeded("198.51.100.8")
        assert await a.retry_after_s("198.51.100.8") == 0


async def test_with_redis_down_limits_hold_in_memory_and_presence_never_raises() -> None:
    limiter = make_limiter("pin", 3, 60.0, redis_client(closed_port_redis_url()), "steward-down")
    for _ in range(3):
        assert not await limiter.exceeded("198.51.100.9")
        await limiter.hit("198.51.100.9")
    assert await limiter.exceeded("198.51.100.9")  # fails open to memory, not to unlimited
    assert await limiter.retry_after_s("198.51.100.9") > 0
    presence = RedisPresence(redis_client(closed_port_redis_url()), prefix="steward-down")
    device, elsewhere = uuid.uuid4(), uuid.uuid4()
    presence.connected(device)
    await presence.flush()
    await presence.flush()  # skipped while Redis is known to be down
    assert await presence.replicas_of([device, elsewhere]) == {device: presence.replica_id}
    presence.disconnected(device)
    assert await presence.replicas_of([device]) == {}
    await presence.stop()


def test_a_replica_without_redis_still_limits_and_serves(
    databases: Databases, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    settings = replica_settings(
        databases.create("postgresql"),
        tmp_path_factory.mktemp("replica-down"),
        closed_port_redis_url(),
        "test-secret-" + uuid.uuid4().hex,
        "steward-down",
    )
    server = LiveServer(settings).start()
    try:
        tenant, creds = tenant_and_agent(server)
        with agent(server.ws_url, creds), login(server, tenant) as api:
            assert connected_to(api, creds["device_id"]) == health(server)["replica"]
        url = f"{server.url}/api/agent/v1/enroll"
        limit = settings.pin_failures_per_minute
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.4")) as http:
            codes = [
                http.post(
                    url, json={"pin": "000000", "machine_id": "m", "hostname": "h"}
                ).status_code
                for _ in range(limit + 1)
            ]
        assert codes == [401] * limit + [429]
        assert health(server)["bus"] == "down (polling the database)"
    finally:
        server.stop()
