"""Watching a web terminal from the other replica: the agent and the owner on A, the watcher on
B, over the Redis bus (PostgreSQL and Redis; skipped without them, failed under CI=true)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from steward.server.terminal.registry import TerminalRegistry
from tests.replicas.cluster import Cluster, health
from tests.support import Seeder, wait_for
from tests.terminal.support import Terminal, World, open_socket, start_world, stop_world


@pytest.fixture(scope="module")
def world(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A tenant whose real agent process is connected to A."""
    found = start_world(cluster.a, Seeder(cluster.a.settings), tmp_path_factory.mktemp("agent"))
    yield found
    stop_world(found)


def _watch_on_b(cluster: Cluster, world: World, session_id: str, email: str) -> Terminal:
    path = f"/api/v1/terminal/sessions/{session_id}/watch"
    return open_socket(cluster.b, world.tenant.slug, path, token=world.token(email))


def _registry(server: object) -> TerminalRegistry:
    registry: TerminalRegistry = server.app.state.terminals  # type: ignore[attr-defined]
    return registry


def test_a_watcher_on_the_other_replica_follows_the_session(cluster: Cluster, world: World) -> None:
    engineer = world.seeder.user(world.tenant, "ENGINEER")
    owner, session_id = world.opened()
    owner.type("echo before-$((1+1))\n")
    owner.until_output("before-2")
    # A says in Redis that it holds the session (what the leader's sweep reads)
    key = f"{cluster.prefix}:terminal-holdings:{health(cluster.a)['replica']}"
    wait_for(lambda: session_id in json.loads(cluster.redis.get(key) or "[]"), timeout=10)

    watcher = _watch_on_b(cluster, world, session_id, engineer)
    opened = watcher.until(lambda f: f.get("type") == "opened")
    assert opened["read_only"] and opened["owner"] == world.tenant.admin_email
    watcher.until_output("before-2")  # the output so far
    owner.until(lambda f: f.get("type") == "watchers" and engineer in f["watchers"])
    owner.type("echo during-$((2+2))\n")
    watcher.until_output("during-4")
    watcher.type("echo sneaky\n")
    assert watcher.until(lambda f: f.get("type") == "error")["code"] == "read_only"

    owner.send(type="close")
    assert owner.until_closed() == (1000, "user")
    ended = watcher.until(lambda f: f.get("type") == "exit")
    assert ended["reason"] == "user"
    assert watcher.until_closed() == (1000, "user")
    assert "sneaky" not in owner.output()

    def audited(action: str) -> list[dict[str, object]]:
        return [e for e in world.audit(action) if e["target"] == session_id]

    wait_for(lambda: audited("terminal.unwatch"), timeout=10)
    for action in ("terminal.watch", "terminal.unwatch", "terminal.watch_input"):
        assert len(audited(action)) == 1, action
    assert world.session(session_id)["close_reason"] == "user"


def test_a_watcher_is_told_when_the_holding_replica_goes_silent(
    cluster: Cluster, world: World
) -> None:
    engineer = world.seeder.user(world.tenant, "ENGINEER")
    remote_a, remote_b = _registry(cluster.a).remote, _registry(cluster.b).remote

    async def silent() -> None:
        """A says nothing more after the catch-up: as if it died."""

    try:
        remote_a._heartbeat = silent  # type: ignore[method-assign]
        remote_b.heartbeat_s, remote_b.silence_s = 0.2, 1.5
        owner, session_id = world.opened()
        watcher = _watch_on_b(cluster, world, session_id, engineer)
        watcher.until(lambda f: f.get("type") == "opened")
        owner.until(lambda f: f.get("type") == "watchers" and engineer in f["watchers"])
        ended = watcher.until(lambda f: f.get("type") == "exit")
        assert ended["reason"] == "server_lost"
        assert watcher.until_closed() == (4503, "server_lost")
        # B said it left: A stops naming the watcher to the owner
        owner.until(lambda f: f.get("type") == "watchers" and f["watchers"] == [])
        owner.close()
    finally:
        del remote_a._heartbeat
        remote_b.heartbeat_s, remote_b.silence_s = 2.0, 10.0


def test_a_session_nobody_holds_is_refused(cluster: Cluster, world: World) -> None:
    engineer = world.seeder.user(world.tenant, "ENGINEER")
    owner, session_id = world.opened()
    registry_a = _registry(cluster.a)
    live = registry_a.get(uuid.UUID(session_id))
    assert live is not None
    remote_b = _registry(cluster.b).remote
    registry_a.sessions.pop(live.id)  # A no longer answers for it (its row stays open)
    try:
        remote_b.join_wait_s = 0.5
        watcher = _watch_on_b(cluster, world, session_id, engineer)
        assert watcher.until_closed() == (4404, "session_not_here")
    finally:
        remote_b.join_wait_s = 3.0
        registry_a.sessions[live.id] = live
        owner.close()
    refusals = [e for e in world.audit("terminal.watch") if e["result"] == "blocked"]
    assert any(e["detail"]["reason"] == "session_not_here" for e in refusals)
