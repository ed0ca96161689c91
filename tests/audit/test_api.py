"""The audit API and console page: filters, pages, exports, permissions and tenant isolation."""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Any

import httpx
import pytest

from steward.server.audit.service import record
from steward.server.runtime import Runtime
from tests.web.support import PASSWORD, World, login


async def _token(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _events(runtime: Runtime, world: World) -> None:
    """acme: 12 events of several kinds; other: 3 events on its own device."""
    acme, other = world.acme.id, world.other.id
    for n in range(12):
        await record(
            runtime.system_sessions,
            tenant_id=acme,
            actor=f"user:{uuid.uuid4()}",
            actor_name="Alice@Acme.test" if n % 3 == 0 else "bob@acme.test",
            action="test.login.failed" if n % 2 else "test.command.run",
            result="failure" if n % 2 else "success",
            risk="high" if n == 11 else "low",
            device_id=world.device_id if n % 4 == 0 else None,
            target='=HYPERLINK("http://evil")' if n == 5 else f"target-{n}",
            detail={"n": n},
        )
    for _ in range(3):
        await record(
            runtime.system_sessions,
            tenant_id=other,
            actor="user:other",
            actor_name="admin@other.test",
            action="login.failed",
            result="failure",
            device_id=world.other_device_id,
            detail={"secret": "other-tenant-secret"},
        )


@pytest.fixture
async def api(client: httpx.AsyncClient, world: World, runtime: Runtime) -> httpx.AsyncClient:
    client.headers.update(await _token(client, "admin@acme.test"))
    await _events(runtime, world)  # after the sign-in (which may be recorded too)
    return client


T = {"action": "test."}  # the events made here, not sign-ins


async def _get(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get("/api/v1/audit/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_filters(api: httpx.AsyncClient, world: World) -> None:
    everything = await _get(api, **T)
    seqs = [e["seq"] for e in everything["events"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 12  # newest first, only acme
    assert all("other-tenant-secret" not in json.dumps(e) for e in everything["events"])

    assert len((await _get(api, actor="alice@ACME", **T))["events"]) == 4
    assert len((await _get(api, action="test.login."))["events"]) == 6
    assert len((await _get(api, action="test.login"))["events"]) == 0  # exact unless a prefix
    assert len((await _get(api, action="test.command.run", result="success"))["events"]) == 6
    assert [e["detail"]["n"] for e in (await _get(api, risk="high"))["events"]] == [11]
    on_device = await _get(api, device_id=str(world.device_id))
    assert {e["device_id"] for e in on_device["events"]} == {str(world.device_id)}
    assert len(on_device["events"]) == 3
    assert (await _get(api, since="2000-01-01T00:00:00", until="2000-01-02T00:00:00"))[
        "events"
    ] == []
    assert len((await _get(api, since="2000-01-01T00:00:00Z", **T))["events"]) == 12


async def test_keyset_pages(api: httpx.AsyncClient) -> None:
    seen: list[int] = []
    before = None
    while True:
        params: dict[str, Any] = {"limit": 5, **T} | ({"before_seq": before} if before else {})
        page = await _get(api, **params)
        seen += [e["seq"] for e in page["events"]]
        before = page["next_before_seq"]
        if before is None:
            break
    assert len(seen) == 12 and seen == sorted(seen, reverse=True)
    assert seen == [e["seq"] for e in (await _get(api, limit=500, **T))["events"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 501},
        {"limit": 0},
        {"result": "maybe"},
        {"risk": "extreme"},
        {"device_id": "not-a-uuid"},
        {"since": "yesterday"},
        {"before_seq": 0},
    ],
)
async def test_bad_values_are_422(api: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await api.get("/api/v1/audit/events", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


async def test_other_tenants_events_are_invisible(api: httpx.AsyncClient, world: World) -> None:
    assert (await _get(api, device_id=str(world.other_device_id)))["events"] == []
    assert (await _get(api, actor="admin@other.test"))["events"] == []
    export = await api.get("/api/v1/audit/export", params={"format": "jsonl"})
    assert "other-tenant-secret" not in export.text
    verify = (await api.get("/api/v1/audit/verify")).json()
    assert verify["ok"] and verify["checked"] >= 12


async def test_role_without_audit_view_is_refused(
    client: httpx.AsyncClient,
    world: World,
    runtime: Runtime,
) -> None:
    await _events(runtime, world)
    headers = await _token(client, "customer@acme.test")
    for path in ("/api/v1/audit/events", "/api/v1/audit/export", "/api/v1/audit/verify"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 403, path
    viewer_headers = await _token(client, "viewer@acme.test")
    assert (await client.get("/api/v1/audit/events", headers=viewer_headers)).status_code == 200


async def test_exports(api: httpx.AsyncClient) -> None:
    jsonl = await api.get(
        "/api/v1/audit/export", params={"format": "jsonl", "result": "failure", **T}
    )
    assert jsonl.status_code == 200
    assert jsonl.headers["content-disposition"].startswith("attachment; filename=")
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [line["detail"]["n"] for line in lines] == [1, 3, 5, 7, 9, 11]  # chain order

    exported = await api.get("/api/v1/audit/export", params={"format": "csv", **T})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 12
    injected = next(r for r in rows if "HYPERLINK" in r["target"])
    assert injected["target"] == '\'=HYPERLINK("http://evil")'  # text, not a formula


async def test_console_page(api: httpx.AsyncClient, world: World) -> None:
    response = await login(api, "viewer@acme.test")
    assert response.status_code == 303
    page = await api.get("/audit", params=T)
    assert page.status_code == 200 and "Audit log" in page.text
    assert page.text.count("data-seq=") == 12 and "other-tenant-secret" not in page.text
    assert 'data-result="failure"' in page.text and 'data-risk="high"' in page.text
    assert 'href="/audit/export?action=test.&amp;format=csv"' in page.text

    filtered = await api.get("/audit", params={"action": "test.login.", "risk": "high"})
    assert filtered.text.count("data-seq=") == 1
    assert "/audit/export?action=test.login.&amp;risk=high&amp;format=jsonl" in filtered.text

    chain = await api.get("/audit/chain")
    assert "Chain intact: " in chain.text and 'data-chain="ok"' in chain.text
    korean = await api.get("/audit?lang=ko")
    assert "감사 로그" in korean.text
    bad = await api.get("/audit", params={"risk": "extreme"})
    assert bad.status_code == 422
    export = await api.get("/audit/export", params={"format": "csv", "result": "success", **T})
    assert export.status_code == 200 and len(export.text.strip().splitlines()) == 7


async def test_console_page_refuses_customers(
    client: httpx.AsyncClient,
    world: World,
) -> None:
    await login(client, "customer@acme.test")
    assert (await client.get("/audit")).status_code == 403
    assert 'href="/audit"' not in (await client.get("/devices")).text
