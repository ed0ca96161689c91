"""The file API against real agent processes: browse, transfer, edit, back up, restore; every
path parameter checked; roles and tenants kept apart."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import timedelta

import pytest

from tests.files.support import World
from tests.support import login, wait_for


def test_list_and_stat(world: World) -> None:
    agent = world.agents[0]
    (agent.root / "docs").mkdir(exist_ok=True)
    (agent.root / "hello.txt").write_text("hello\n")
    with world.api() as api:
        listed = api.get(
            f"/api/v1/devices/{agent.device_id}/files", params={"path": str(agent.root)}
        )
        assert listed.status_code == 200, listed.text
        names = {e["name"]: e for e in listed.json()["entries"]}
        assert names["docs"]["kind"] == "dir" and names["hello.txt"]["size"] == 6
        assert names["hello.txt"]["owner"] and names["hello.txt"]["mode"].startswith("-rw")
        default = api.get(f"/api/v1/devices/{agent.device_id}/files").json()
        assert default["path"] == str(world.agents[0].root)


def _files(agent_id: str) -> str:
    return f"/api/v1/devices/{agent_id}/files"


def test_upload_in_chunks_resumed_then_downloaded_with_ranges(world: World) -> None:
    agent = world.agents[0]
    content = os.urandom(2 * 1024 * 1024 + 12345)
    target = agent.root / "upload.bin"
    with world.api() as api:
        base = _files(agent.device_id)
        created = api.post(f"{base}/uploads", json={"path": str(target), "size": len(content)})
        assert created.status_code == 201, created.text
        upload = created.json()
        chunk = upload["chunk_bytes"]
        url = f"{base}/uploads/{upload['id']}"
        assert (
            api.put(url, params={"offset": 0}, content=content[:chunk]).json()["received"] == chunk
        )
        # the connection "dropped": ask how much arrived and carry on from there
        status = api.get(url).json()
        assert status["received"] == chunk
        wrong = api.put(url, params={"offset": 5}, content=content[chunk : 2 * chunk])
        assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "offset_mismatch"
        early = api.post(f"{url}/finish", json={"sha256": hashlib.sha256(content).hexdigest()})
        assert early.status_code == 409 and early.json()["error"]["code"] == "upload_incomplete"
        offset = status["received"]
        while offset < len(content):
            sent = api.put(url, params={"offset": offset}, content=content[offset : offset + chunk])
            assert sent.status_code == 200, sent.text
            offset = sent.json()["received"]
        finished = api.post(f"{url}/finish", json={"sha256": hashlib.sha256(content).hexdigest()})
        assert finished.status_code == 200, finished.text
        assert finished.json()["status"] == "done"
        assert target.read_bytes() == content

        whole = api.get(f"{base}/download", params={"path": str(target)})
        assert whole.status_code == 200
        assert whole.content == content
        assert whole.headers["x-content-sha256"] == hashlib.sha256(content).hexdigest()
        assert int(whole.headers["content-length"]) == len(content)
        resumed = api.get(
            f"{base}/download", params={"path": str(target)}, headers={"Range": "bytes=1000000-"}
        )
        assert resumed.status_code == 206
        assert resumed.content == content[1_000_000:]
        assert (
            resumed.headers["content-range"] == f"bytes 1000000-{len(content) - 1}/{len(content)}"
        )
        beyond = api.get(
            f"{base}/download", params={"path": str(target)}, headers={"Range": "bytes=99999999-"}
        )
        assert beyond.status_code == 416


def test_an_abandoned_upload_expires_and_its_partial_file_goes(world: World) -> None:
    agent = world.agents[0]
    target = agent.root / "abandoned.bin"
    with world.api() as api:
        base = _files(agent.device_id)
        upload = api.post(f"{base}/uploads", json={"path": str(target), "size": 100}).json()
        url = f"{base}/uploads/{upload['id']}"
        assert api.put(url, params={"offset": 0}, content=b"x" * 10).status_code == 200
        partial = agent.root / f".abandoned.bin.{uuid.UUID(upload['id']).hex}.part"
        assert partial.stat().st_size == 10
        # the browser closed a day and more ago: the server's periodic sweep expires it
        world.backdate_upload(upload["id"], timedelta(hours=25))
        wait_for(lambda: api.get(url).json()["status"] == "expired", timeout=15)
        wait_for(lambda: not partial.exists(), timeout=15)  # the agent was told
        late = api.put(url, params={"offset": 10}, content=b"y" * 10)
        assert late.status_code == 410 and late.json()["error"]["code"] == "upload_expired"
        finish = api.post(f"{url}/finish", json={"sha256": "0" * 64})
        assert finish.status_code == 410 and finish.json()["error"]["code"] == "upload_expired"
    assert not target.exists()


def test_a_wrong_hash_leaves_nothing(world: World) -> None:
    agent = world.agents[0]
    target = agent.root / "wrong.bin"
    with world.api() as api:
        base = _files(agent.device_id)
        upload = api.post(f"{base}/uploads", json={"path": str(target), "size": 3}).json()
        api.put(f"{base}/uploads/{upload['id']}", params={"offset": 0}, content=b"abc")
        bad = api.post(f"{base}/uploads/{upload['id']}/finish", json={"sha256": "0" * 64})
        assert bad.status_code == 409 and bad.json()["error"]["code"] == "hash_mismatch"
    assert not target.exists()
    assert not [p for p in agent.root.iterdir() if p.name.endswith(".part")]


def test_oversize_uploads_are_refused(world: World) -> None:
    agent = world.agents[0]
    world.policy(max_upload_bytes=1000)
    try:
        with world.api() as api:
            base = _files(agent.device_id)
            big = api.post(f"{base}/uploads", json={"path": str(agent.root / "big"), "size": 1001})
            assert big.status_code == 413 and big.json()["error"]["code"] == "upload_too_large"
            upload = api.post(f"{base}/uploads", json={"path": str(agent.root / "s"), "size": 10})
            past = api.put(
                f"{base}/uploads/{upload.json()['id']}", params={"offset": 0}, content=b"x" * 11
            )
            assert past.status_code == 413
            chunk = api.put(
                f"{base}/uploads/{upload.json()['id']}",
                params={"offset": 0},
                content=b"x" * (1024 * 1024 + 1),
            )
            assert chunk.status_code == 413
    finally:
        world.policy(max_upload_bytes=2 * 1024**3)
    assert not (agent.root / "big").exists()


def test_mkdir_rename_delete(world: World) -> None:
    agent = world.agents[0]
    with world.api() as api:
        base = _files(agent.device_id)
        made = api.post(
            f"{base}/mkdir", json={"path": str(agent.root / "m" / "n"), "parents": True}
        )
        assert made.status_code == 204, made.text
        renamed = api.post(
            f"{base}/rename", json={"path": str(agent.root / "m"), "target": str(agent.root / "k")}
        )
        assert renamed.status_code == 204, renamed.text
        assert (agent.root / "k" / "n").is_dir()
        kept = api.post(f"{base}/delete", json={"path": str(agent.root / "k")})
        assert kept.status_code == 409  # not empty: the agent says so
        gone = api.post(f"{base}/delete", json={"path": str(agent.root / "k"), "recursive": True})
        assert gone.status_code == 204
        assert not (agent.root / "k").exists()
        root = api.post(f"{base}/delete", json={"path": str(agent.root), "recursive": True})
        assert root.status_code == 422 and agent.root.exists()


# ---- every path parameter, every way out ---------------------------------------------------

BAD_PATHS = {
    "dotdot": ("{root}/../outside.txt", {"unsafe_path"}),
    "absolute_elsewhere": ("/etc/passwd", {"outside_roots"}),
    "sibling": ("{base}/outside.txt", {"outside_roots"}),
    "symlink": ("{root}/escape/outside.txt", {"outside_roots"}),
    "percent": ("{root}/%2e%2e/outside.txt", {"unsafe_path"}),
    "nul": ("{root}/a\x00b", {"unsafe_path"}),
    "relative": ("outside.txt", {"unsafe_path"}),
}


def _calls(base: str, bad: str, good: str) -> list[tuple[str, str, dict[str, object]]]:
    """(method, url, keyword arguments) of every route that takes a path, with `bad` in it."""
    return [
        ("GET", base, {"params": {"path": bad}}),
        ("GET", f"{base}/stat", {"params": {"path": bad}}),
        ("GET", f"{base}/download", {"params": {"path": bad}}),
        ("GET", f"{base}/text", {"params": {"path": bad}}),
        ("PUT", f"{base}/text", {"json": {"path": bad, "content": "pwned"}}),
        ("POST", f"{base}/text/revert", {"json": {"path": bad}}),
        ("POST", f"{base}/mkdir", {"json": {"path": bad}}),
        ("POST", f"{base}/rename", {"json": {"path": bad, "target": good}}),
        ("POST", f"{base}/rename", {"json": {"path": good, "target": bad}}),
        ("POST", f"{base}/delete", {"json": {"path": bad, "recursive": True}}),
        ("POST", f"{base}/uploads", {"json": {"path": bad, "size": 5, "overwrite": True}}),
        ("POST", base.replace("/files", "/backups"), {"json": {"path": bad}}),
    ]


@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_every_path_parameter_refuses_a_way_out(world: World, case: str) -> None:
    agent = world.agents[0]
    escape = agent.root / "escape"
    if not escape.is_symlink():
        escape.symlink_to(agent.base)
    (agent.root / "victim.txt").write_text("victim")
    template, codes = BAD_PATHS[case]
    bad = template.format(root=agent.root, base=agent.base)
    good = str(agent.root / "victim.txt")
    with world.api() as api:
        for method, url, kwargs in _calls(_files(agent.device_id), bad, good):
            response = api.request(method, url, **kwargs)  # type: ignore[arg-type]
            shown = f"{method} {url} {kwargs}: {response.status_code} {response.text[:300]}"
            assert response.status_code in (403, 422), shown
            assert response.json()["error"]["code"] in codes | {"invalid_input"}, shown
    assert (agent.base / "outside.txt").read_text() == "outside"
    assert (agent.root / "victim.txt").read_text() == "victim"
    assert sorted(p.name for p in agent.base.iterdir()) == [
        "agent.log", "outside.txt", "root", "state"
    ]  # fmt: skip


def test_a_restore_cannot_leave_the_roots(world: World) -> None:
    agent = world.agents[0]
    (agent.root / "r.txt").write_text("r")
    with world.api() as api:
        backup = api.post(
            f"/api/v1/devices/{agent.device_id}/backups", json={"path": str(agent.root / "r.txt")}
        ).json()
        for bad in (f"{agent.root}/../outside.txt", f"{agent.root}/escape/outside.txt", "/etc/x"):
            response = api.post(f"/api/v1/backups/{backup['id']}/restore", json={"path": bad})
            assert response.status_code in (403, 422), response.text
    assert (agent.base / "outside.txt").read_text() == "outside"


# ---- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["VIEWER", "CUSTOMER"])
def test_viewers_and_customers_cannot_touch_files(world: World, role: str) -> None:
    agent = world.agents[0]
    (agent.root / "keep.txt").write_text("keep")
    email = world.seeder.user(world.tenant, role)
    base = _files(agent.device_id)
    with world.api(email) as api:
        for method, url, body in [
            ("GET", f"{base}?path={agent.root}", None),
            ("POST", f"{base}/delete", {"path": str(agent.root / "keep.txt")}),
            ("POST", f"{base}/uploads", {"path": str(agent.root / "x"), "size": 1}),
            ("PUT", f"{base}/text", {"path": str(agent.root / "keep.txt"), "content": "x"}),
        ]:
            response = api.request(method, url, json=body)
            assert response.status_code == 403, response.text
            assert response.json()["error"]["code"] == "forbidden"
    assert (agent.root / "keep.txt").read_text() == "keep"


def test_another_tenants_device_is_not_found(world: World) -> None:
    agent = world.agents[0]
    (agent.root / "mine.txt").write_text("mine")
    with world.api() as api:
        backup = api.post(
            f"/api/v1/devices/{agent.device_id}/backups",
            json={"path": str(agent.root / "mine.txt")},
        ).json()
    other = world.seeder.tenant()

    with login(world.server, other) as api:
        base = _files(agent.device_id)
        for method, url, body in [
            ("GET", f"{base}?path={agent.root}", None),
            ("GET", f"{base}/download?path={agent.root}/keep.txt", None),
            ("POST", f"{base}/delete", {"path": str(agent.root / "keep.txt")}),
            ("POST", f"{base}/uploads", {"path": str(agent.root / "x"), "size": 1}),
            ("GET", f"/api/v1/devices/{agent.device_id}/backups", None),
            ("GET", f"/api/v1/backups/{backup['id']}", None),
            ("POST", f"/api/v1/backups/{backup['id']}/restore", {}),
        ]:
            response = api.request(method, url, json=body)
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"].endswith("not_found")


# ---- editor ----------------------------------------------------------------------------------


def test_editor_save_backs_up_and_revert_walks_back(world: World) -> None:
    agent = world.agents[0]
    target = agent.root / "app.conf"
    target.write_text("version = 1\n")
    base = _files(agent.device_id)
    with world.api() as api:
        opened = api.get(f"{base}/text", params={"path": str(target)}).json()
        assert opened["content"] == "version = 1\n"
        for number in (2, 3):
            saved = api.put(
                f"{base}/text",
                json={"path": str(target), "content": f"version = {number}\n",
                      "base_sha256": opened["sha256"]},
            )  # fmt: skip
            assert saved.status_code == 200, saved.text
            assert saved.json()["backup_id"]
            opened = api.get(f"{base}/text", params={"path": str(target)}).json()
        assert target.read_text() == "version = 3\n"
        stale = api.put(
            f"{base}/text",
            json={"path": str(target), "content": "lost", "base_sha256": "0" * 64},
        )
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "file_changed"
        versions = api.get(
            f"/api/v1/devices/{agent.device_id}/backups", params={"path": str(target)}
        ).json()
        assert [v["reason"] for v in versions] == ["editor", "editor"]
        assert api.post(f"{base}/text/revert", json={"path": str(target)}).status_code == 200
        assert target.read_text() == "version = 2\n"
        assert api.post(f"{base}/text/revert", json={"path": str(target)}).status_code == 200
        assert target.read_text() == "version = 1\n"
        none = api.post(f"{base}/text/revert", json={"path": str(target)})
        assert none.status_code == 404 and none.json()["error"]["code"] == "no_earlier_version"


def test_editor_refuses_binary_and_oversize_files(world: World) -> None:
    agent = world.agents[0]
    (agent.root / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    (agent.root / "big.txt").write_text("x" * 5000)
    world.policy(max_editor_bytes=4096)
    try:
        with world.api() as api:
            base = _files(agent.device_id)
            binary = api.get(f"{base}/text", params={"path": str(agent.root / "image.bin")})
            assert binary.status_code == 422 and binary.json()["error"]["code"] == "binary_file"
            big = api.get(f"{base}/text", params={"path": str(agent.root / "big.txt")})
            assert big.status_code == 413
            save = api.put(
                f"{base}/text", json={"path": str(agent.root / "n.txt"), "content": "y" * 5000}
            )
            assert save.status_code == 413
    finally:
        world.policy(max_editor_bytes=1024 * 1024)


# ---- backups ---------------------------------------------------------------------------------


def test_a_directory_snapshot_restored_on_a_second_agent(world: World) -> None:
    first, second = world.agents
    site = first.root / "site"
    (site / "css").mkdir(parents=True)
    (site / "empty").mkdir()
    (site / "index.html").write_text("<h1>hi</h1>")
    (site / "css" / "main.css").write_bytes(os.urandom(3 * 1024 * 1024))
    with world.api() as api:
        made = api.post(f"/api/v1/devices/{first.device_id}/backups", json={"path": str(site)})
        assert made.status_code == 201, made.text
        backup = made.json()
        assert backup["kind"] == "dir" and backup["file_count"] == 2
        assert backup["size"] == 3 * 1024 * 1024 + len("<h1>hi</h1>")
        target = second.root / "restored"
        restored = api.post(
            f"/api/v1/backups/{backup['id']}/restore",
            json={"device_id": second.device_id, "path": str(target)},
        )
        assert restored.status_code == 200, restored.text
        assert restored.json()["files"] == 2
    assert (target / "index.html").read_text() == "<h1>hi</h1>"
    assert (target / "css" / "main.css").read_bytes() == (site / "css" / "main.css").read_bytes()
    assert (target / "empty").is_dir()


def test_retention_keeps_n_versions(world: World) -> None:
    agent = world.agents[0]
    target = agent.root / "kept.txt"
    world.policy(backup_keep_versions=2)
    try:
        with world.api() as api:
            for number in range(4):
                target.write_text(f"v{number}")
                made = api.post(
                    f"/api/v1/devices/{agent.device_id}/backups", json={"path": str(target)}
                )
                assert made.status_code == 201, made.text
            versions = api.get(
                f"/api/v1/devices/{agent.device_id}/backups", params={"path": str(target)}
            ).json()
            assert len(versions) == 2
            restored = api.post(f"/api/v1/backups/{versions[-1]['id']}/restore", json={})
            assert restored.status_code == 200, restored.text
        assert target.read_text() == "v2"
        store = world.server.settings.data_dir / "tenants" / str(world.tenant.tenant_id)
        kept = list(store.glob(f"*/backups/{agent.device_id}/*"))
        assert len({p.name for p in kept} & {v["id"] for v in versions}) == 2
    finally:
        world.policy(backup_keep_versions=10)


def test_the_policy_refuses_system_directories_unless_allowed(world: World) -> None:
    with world.api() as api:
        current = api.get("/api/v1/tenant/file-policy").json()
        refused = api.put("/api/v1/tenant/file-policy", json=current | {"linux_roots": ["/etc"]})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "system_directory"
        assert api.get("/api/v1/tenant/file-policy").json() == current
