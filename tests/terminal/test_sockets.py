"""The terminal WebSockets against a real server and a real agent process (SQLite and
PostgreSQL): a shell end to end, its recording and audit, refusals, limits, watching."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import LiveServer, Seeder, login
from tests.terminal.support import World, open_socket, start_world, stop_world


@pytest.fixture(scope="module")
def world(
    server: LiveServer, seeder: Seeder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    found = start_world(server, seeder, tmp_path_factory.mktemp("terminal"))
    yield found
    stop_world(found)


def test_a_shell_end_to_end_with_its_recording(world: World) -> None:
    world.policy(record_input=True)
    terminal, session_id = world.opened()
    terminal.type("echo steward-$((6*7))\n")
    terminal.until_output("steward-42")
    terminal.send(type="resize", cols=100, rows=30)
    terminal.type("stty size\n")
    terminal.until_output("30 100")
    terminal.send(type="resize", cols="wide", rows=30)
    error = terminal.until(lambda f: f.get("type") == "error")
    assert error["code"] == "invalid_resize"
    terminal.send(type="resize", cols=5000, rows=30)
    assert terminal.until(lambda f: f.get("type") == "error")["code"] == "invalid_resize"
    terminal.type("exit 3\n")
    ended = terminal.until(lambda f: f.get("type") == "exit")
    assert ended["reason"] == "exited" and ended["exit_code"] == 3
    assert terminal.until_closed() == (1000, "exited")

    row = world.session(session_id)
    assert row["status"] == "closed" and row["close_reason"] == "exited"
    assert row["exit_code"] == 3 and row["input_recorded"] and row["duration_s"] is not None
    with world.api() as api:
        cast = api.get(f"/api/v1/terminal/sessions/{session_id}/recording")
        assert cast.status_code == 200
        found = api.get(
            f"/api/v1/terminal/sessions/{session_id}/search", params={"q": "STEWARD-42"}
        )
        listed = api.get("/api/v1/terminal/sessions", params={"device_id": world.device_id})
    assert hashlib.sha256(cast.content).hexdigest() == row["recording_sha256"]
    assert len(cast.content) == row["recording_bytes"]
    lines = cast.text.splitlines()
    header = __import__("json").loads(lines[0])
    assert header["version"] == 2 and (header["width"], header["height"]) == (80, 24)
    assert '"r", "100x30"' in cast.text and '"i", "exit 3' in cast.text
    assert any(m["line"].strip() == "steward-42" for m in found.json()["matches"])
    assert session_id in [s["id"] for s in listed.json()]
    closes = [e for e in world.audit("terminal.close") if e["detail"]["session_id"] == session_id]
    assert len(closes) == 1
    assert closes[0]["detail"]["sha256"] == row["recording_sha256"]
    assert closes[0]["detail"]["size"] == len(cast.content)
    assert [e for e in world.audit("terminal.open") if e["target"] == session_id]


def test_refused_roles_devices_and_credentials(world: World) -> None:
    viewer = world.seeder.user(world.tenant, "VIEWER")
    customer = world.seeder.user(world.tenant, "CUSTOMER")
    for email in (viewer, customer):
        terminal = world.terminal(email)
        assert terminal.until_closed() == (4403, "forbidden")
    # another tenant's device: as if it did not exist
    other = world.seeder.tenant()
    with login(world.server, other) as api:
        pin = world.seeder.pin(other)
    from tests.support import enroll

    foreign = enroll(world.server, pin)["device_id"]
    assert world.terminal(device_id=foreign).until_closed()[0] == 4404
    assert world.terminal(device_id=str(uuid.uuid4())).until_closed()[0] == 4404
    path = f"/api/v1/devices/{world.device_id}/terminal"
    assert open_socket(world.server, world.tenant.slug, path).until_closed() == (
        4401,
        "unauthorized",
    )
    assert (
        open_socket(world.server, world.tenant.slug, path, token="nonsense").until_closed()[0]
        == 4401
    )
    # the console's cookie from another site's page
    session_token = world.token()
    bad = open_socket(world.server, world.tenant.slug, path, cookie=session_token,
                      origin="http://evil.example")  # fmt: skip
    assert bad.until_closed() == (4403, "bad_origin")
    assert world.terminal(query="?cols=0&rows=24").until_closed() == (4400, "invalid_size")
    blocked = world.audit("terminal.open")
    reasons = {e["detail"].get("reason") for e in blocked if e["result"] == "blocked"}
    assert {"forbidden", "device_not_found", "unauthorized", "bad_origin"} <= reasons
    del api


def test_outside_the_time_window_is_refused(world: World) -> None:
    engineer = world.seeder.user(world.tenant, "ENGINEER")
    with world.api() as api:
        users = api.get("/api/v1/users").json()
        user_id = next(u["id"] for u in users if u["email"] == engineer)
        # a window of one minute, twelve hours away: never now
        import datetime as dt

        now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)
        start = now.strftime("%H:%M")
        end = (now + dt.timedelta(minutes=1)).strftime("%H:%M")
        scope = {"time_windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                   "start": start, "end": end}]}  # fmt: skip
        changed = api.patch(f"/api/v1/users/{user_id}", json={"scope": scope})
        assert changed.status_code == 200, changed.text
    assert world.terminal(engineer).until_closed() == (4403, "outside_time_window")


def test_a_flood_and_an_oversized_frame_close_the_session(world: World) -> None:
    terminal, session_id = world.opened()
    for _ in range(1000):
        terminal.send(type="ping")
    assert terminal.until_closed() == (4429, "flood")
    assert world.session(session_id)["close_reason"] == "flood"

    terminal, _ = world.opened()
    terminal.type("x" * (200 * 1024))
    assert terminal.until_closed() == (4429, "flood")

    terminal, session_id = world.opened()
    for _ in range(25):
        terminal.socket.send("not json")
    assert terminal.until_closed() == (4429, "flood")


def test_watching_live_and_terminating(world: World) -> None:
    engineer = world.seeder.user(world.tenant, "ENGINEER")
    viewer = world.seeder.user(world.tenant, "VIEWER")
    owner, session_id = world.opened()
    owner.type("echo before-$((1+1))\n")
    owner.until_output("before-2")

    assert world.watch(session_id, viewer).until_closed()[0] == 4404
    other = world.seeder.tenant()  # another tenant's administrator, on their own host
    with login(world.server, other) as api:
        token = api.headers["Authorization"].split(" ", 1)[1]
    path = f"/api/v1/terminal/sessions/{session_id}/watch"
    assert open_socket(world.server, other.slug, path, token=token).until_closed()[0] == 4404
    watcher = world.watch(session_id, engineer)
    watcher.until(lambda f: f.get("type") == "opened")
    watcher.until_output("before-2")  # the output so far
    owner.until(lambda f: f.get("type") == "watchers" and engineer in f["watchers"])
    owner.type("echo during-$((2+2))\n")
    watcher.until_output("during-4")
    watcher.type("echo sneaky\n")
    assert watcher.until(lambda f: f.get("type") == "error")["code"] == "read_only"
    watcher.close()
    owner.until(lambda f: f.get("type") == "watchers" and f["watchers"] == [])

    with world.api(engineer) as api:
        refused = api.post(f"/api/v1/terminal/sessions/{session_id}/terminate")
        assert refused.status_code == 403
    with world.api() as api:
        done = api.post(f"/api/v1/terminal/sessions/{session_id}/terminate")
        assert done.status_code == 202, done.text
    assert owner.until_closed() == (4410, "terminated")
    row = world.session(session_id)
    assert row["close_reason"] == "terminated" and row["closed_by"] == world.tenant.admin_email
    for action in (
        "terminal.watch",
        "terminal.unwatch",
        "terminal.watch_input",
        "terminal.terminate",
    ):
        assert [e for e in world.audit(action) if e["target"] == session_id], action
    assert "sneaky" not in owner.output()


def test_idle_timeout_and_recording_failures(world: World, server: LiveServer) -> None:
    registry = server.app.state.terminals
    registry.time_scale = 0.01  # 60 s of policy -> 0.6 s
    try:
        world.policy(idle_timeout_s=60)
        terminal, session_id = world.opened()
        assert terminal.until_closed() == (4408, "idle_timeout")
        assert world.session(session_id)["close_reason"] == "idle_timeout"
    finally:
        registry.time_scale = 1.0
        world.policy(idle_timeout_s=900)

    # recordings/ of the device's group is a file: nothing can be written under it
    group_dir = _group_dir(server, world)
    group_dir.mkdir(parents=True, exist_ok=True)
    blocker = group_dir / "recordings"
    moved = group_dir / "recordings.moved"
    if blocker.exists():
        blocker.rename(moved)
    blocker.write_text("in the way")
    try:
        world.policy(recording_failure_policy="strict")
        terminal = world.terminal()
        assert terminal.until_closed() == (4500, "recording_failed")
        world.policy(recording_failure_policy="best_effort")
        terminal, session_id = world.opened()
        terminal.type("echo unrecorded-$((3+3))\n")
        terminal.until_output("unrecorded-6")
        terminal.close()
        failed = [e for e in world.audit("terminal.recording_failed") if e["target"] == session_id]
        assert failed and failed[0]["detail"]["policy"] == "best_effort"
    finally:
        blocker.unlink()
        if moved.exists():
            moved.rename(blocker)
        world.policy(recording_failure_policy="strict")


def _group_dir(server: LiveServer, world: World) -> Path:
    with world.api() as api:
        device = api.get(f"/api/v1/devices/{world.device_id}").json()
    group_id = device.get("group_id")
    if group_id is None:
        import asyncio

        from sqlalchemy import select

        from steward.server.db.engine import standalone_session
        from steward.server.devices.models import Device

        async def find() -> str:
            async with standalone_session(server.settings.effective_database_url) as session:
                found = await session.scalar(
                    select(Device.group_id).where(Device.id == uuid.UUID(world.device_id))
                )
                return str(found)

        group_id = asyncio.run(find())
    return server.settings.data_dir / "tenants" / str(world.tenant.tenant_id) / str(group_id)
