"""The script library's API on a live server (SQLite and PostgreSQL): create, version, read,
rename/archive, resolve; roles, another tenant's ids, the audit log."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.scripts.helpers import script_body
from tests.support import LiveServer, SeededTenant, Seeder, login

NASTY = "web-01; $(rm -rf /)"


@pytest.fixture(scope="module")
def tenant(seeder: Seeder) -> SeededTenant:
    return seeder.tenant()


@pytest.fixture(scope="module")
def admin(server: LiveServer, tenant: SeededTenant) -> Any:
    with login(server, tenant) as client:
        yield client


def _unique(**overrides: Any) -> dict[str, Any]:
    return script_body(name=f"script-{uuid.uuid4().hex[:8]}", **overrides)


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def _audit(admin: httpx.Client, action: str) -> list[dict[str, Any]]:
    page = admin.get("/api/v1/audit/events", params={"action": action, "limit": 50})
    page.raise_for_status()
    return list(page.json()["events"])


def test_create_version_read_and_resolve(admin: httpx.Client) -> None:
    created = admin.post("/api/v1/scripts", json=_unique())
    assert created.status_code == 201, created.text
    script = created.json()
    script_id = script["id"]
    assert script["latest_version"] == 1 and [v["version"] for v in script["versions"]] == [1]
    first_sha = script["latest"]["sha256"]

    saved = admin.post(
        f"/api/v1/scripts/{script_id}/versions",
        json={"body": "echo two\n", "parameters": [], "note": "simpler"},
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["version"] == 2 and saved.json()["interpreter"] == "sh"

    detail = admin.get(f"/api/v1/scripts/{script_id}").json()
    assert detail["latest"]["body"] == "echo two\n"
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    old = admin.get(f"/api/v1/scripts/{script_id}/versions/1").json()
    assert old["sha256"] == first_sha and old["parameters"][0]["name"] == "target"
    _error(admin.get(f"/api/v1/scripts/{script_id}/versions/7"), 404, "version_not_found")

    preview = admin.post(
        f"/api/v1/scripts/{script_id}/resolve", json={"version": 1, "params": {"target": NASTY}}
    )
    assert preview.status_code == 200, preview.text
    payload = preview.json()
    assert payload["env"]["STEWARD_PARAM_TARGET"] == NASTY  # literally, in the environment
    assert NASTY not in payload["body"] and payload["sha256"] == first_sha
    assert payload["args"] == ["3", "safe"] and payload["version"] == 1

    listed = admin.get("/api/v1/scripts").json()
    assert script_id in {s["id"] for s in listed}

    created_events = [e for e in _audit(admin, "script.create") if e["target"].endswith(script_id)]
    assert created_events and created_events[0]["detail"]["sha256"] == first_sha
    versions = [e for e in _audit(admin, "script.version") if e["target"].endswith(script_id)]
    assert versions and versions[0]["detail"]["sha256"] == saved.json()["sha256"]


def test_bad_input_is_refused(admin: httpx.Client) -> None:
    script_id = admin.post("/api/v1/scripts", json=_unique()).json()["id"]
    resolve = f"/api/v1/scripts/{script_id}/resolve"
    for params, named in [
        ({}, "target"),
        ({"target": "x", "count": "many"}, "count"),
        ({"target": "x", "force": "perhaps"}, "force"),
        ({"target": "x", "mode": "turbo"}, "mode"),
        ({"target": "x", "ticket": "nope"}, "ticket"),
        ({"target": "x", "unknown": "1"}, "unknown"),
    ]:
        response = admin.post(resolve, json={"params": params})
        _error(response, 422, "invalid_parameter")
        assert f"'{named}'" in response.json()["error"]["message"]
    _error(admin.post(resolve, json={"params": {}, "extra": 1}), 422, "invalid_input")
    _error(admin.post("/api/v1/scripts", json=_unique(interpreter="perl")), 422, "invalid_input")
    _error(admin.post("/api/v1/scripts", json=_unique(body="")), 422, "invalid_input")
    bad_param = [{"name": "x", "pattern": "("}]
    _error(admin.post("/api/v1/scripts", json=_unique(parameters=bad_param)), 422, "invalid_input")
    name = admin.get(f"/api/v1/scripts/{script_id}").json()["name"]
    _error(admin.post("/api/v1/scripts", json=script_body(name=name)), 409, "script_exists")
    _error(admin.get(f"/api/v1/scripts/{uuid.uuid4()}"), 404, "script_not_found")


def test_rename_and_archive(admin: httpx.Client) -> None:
    script_id = admin.post("/api/v1/scripts", json=_unique()).json()["id"]
    new_name = f"renamed-{uuid.uuid4().hex[:6]}"
    renamed = admin.patch(f"/api/v1/scripts/{script_id}", json={"name": new_name})
    assert renamed.status_code == 200 and renamed.json()["name"] == new_name
    archived = admin.patch(f"/api/v1/scripts/{script_id}", json={"archived": True})
    assert archived.json()["archived"] is True
    assert script_id not in {s["id"] for s in admin.get("/api/v1/scripts").json()}
    everything = admin.get("/api/v1/scripts", params={"include_archived": "true"}).json()
    assert script_id in {s["id"] for s in everything}
    _error(
        admin.post(f"/api/v1/scripts/{script_id}/resolve", json={"params": {"target": "x"}}),
        409,
        "script_archived",
    )
    _error(
        admin.post(f"/api/v1/scripts/{script_id}/versions", json={"body": "echo\n"}),
        409,
        "script_archived",
    )
    _error(admin.patch(f"/api/v1/scripts/{script_id}", json={"bogus": 1}), 422, "invalid_input")
    updates = [e for e in _audit(admin, "script.update") if e["target"].endswith(script_id)]
    assert {tuple(e["detail"]["changes"]) for e in updates} == {("name",), ("archived",)}


def test_roles(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant, admin: httpx.Client
) -> None:
    script_id = admin.post("/api/v1/scripts", json=_unique()).json()["id"]
    viewer_email = seeder.user(tenant, "VIEWER")
    engineer_email = seeder.user(tenant, "ENGINEER")
    with login(server, tenant, viewer_email) as viewer:
        for response in (
            viewer.get("/api/v1/scripts"),
            viewer.get(f"/api/v1/scripts/{script_id}"),
            viewer.get(f"/api/v1/scripts/{script_id}/versions/1"),
            viewer.post(f"/api/v1/scripts/{script_id}/resolve", json={"params": {}}),
            viewer.post("/api/v1/scripts", json=_unique()),
            viewer.post(f"/api/v1/scripts/{script_id}/versions", json={"body": "echo\n"}),
            viewer.patch(f"/api/v1/scripts/{script_id}", json={"archived": True}),
        ):
            _error(response, 403, "forbidden")
    with login(server, tenant, engineer_email) as engineer:
        made = engineer.post("/api/v1/scripts", json=_unique())
        assert made.status_code == 201, made.text
        saved = engineer.post(f"/api/v1/scripts/{script_id}/versions", json={"body": "echo\n"})
        assert saved.status_code == 201 and saved.json()["created_by"] == engineer_email


def test_another_tenants_script_does_not_exist(
    server: LiveServer, seeder: Seeder, admin: httpx.Client
) -> None:
    script_id = admin.post("/api/v1/scripts", json=_unique()).json()["id"]
    with login(server, seeder.tenant()) as other:
        for response in (
            other.get(f"/api/v1/scripts/{script_id}"),
            other.get(f"/api/v1/scripts/{script_id}/versions/1"),
            other.post(f"/api/v1/scripts/{script_id}/resolve", json={"params": {"target": "x"}}),
            other.post(f"/api/v1/scripts/{script_id}/versions", json={"body": "echo\n"}),
            other.patch(f"/api/v1/scripts/{script_id}", json={"archived": True}),
        ):
            _error(response, 404, "script_not_found")
        assert other.get("/api/v1/scripts").json() == []
    assert admin.get(f"/api/v1/scripts/{script_id}").json()["archived"] is False
