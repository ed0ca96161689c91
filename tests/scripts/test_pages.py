"""The script library's console pages: list, create (with parameter rows), editor, versions,
archive; English and Korean; a viewer is refused."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from steward.server.web.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from tests.scripts.helpers import script_body
from tests.support import LiveServer, SeededTenant, Seeder, login, tenant_client


@pytest.fixture(scope="module")
def tenant(seeder: Seeder) -> SeededTenant:
    return seeder.tenant()


def _console(server: LiveServer, tenant: SeededTenant, email: str | None = None) -> httpx.Client:
    """A browser-like client: the session cookie and the CSRF cookie (+ header)."""
    with login(server, tenant, email) as api:
        token = str(api.headers["Authorization"]).removeprefix("Bearer ")
    with tenant_client(server, tenant.slug) as anonymous:
        csrf = str(anonymous.get("/login").cookies[CSRF_COOKIE])
    cookie = f"{SESSION_COOKIE}={token}; {CSRF_COOKIE}={csrf}"
    return tenant_client(server, tenant.slug, Cookie=cookie, **{CSRF_HEADER: csrf})


def _form(name: str, rows: list[dict[str, str]], **extra: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "description": "from the console",
        "interpreter": "bash",
        "body": 'echo "$STEWARD_PARAM_HOST"\r\nexit 0\r\n',
        "note": "console",
        **extra,
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"param_{index}_{key}"] = value
    return data


def test_create_edit_and_archive_in_the_console(server: LiveServer, tenant: SeededTenant) -> None:
    name = f"console-{uuid.uuid4().hex[:6]}"
    row = {"name": "host", "label": "Host", "type": "string", "required": "1", "pass_as": "env"}
    with _console(server, tenant) as browser:
        listed = browser.get("/scripts")
        assert listed.status_code == 200 and "data-create-script" in listed.text
        added = browser.post("/scripts", data=_form(name, [row], action="add_param"))
        assert added.status_code == 200 and 'name="param_1_name"' in added.text
        assert 'value="host"' in added.text  # what was typed is kept
        removed = browser.post("/scripts", data=_form(name, [row], action="remove_param:0"))
        assert "data-no-params" in removed.text
        bad = browser.post("/scripts", data=_form(name, [{**row, "name": "Bad Name"}]))
        assert bad.status_code == 422 and "data-error" in bad.text

        created = browser.post("/scripts", data=_form(name, [row]))
        assert created.status_code == 303, created.text[:500]
        location = created.headers["location"]
        script_id = re.search(r"/scripts/([0-9a-f-]{36})", location).group(1)  # type: ignore[union-attr]
        editor = browser.get(location)
        assert editor.status_code == 200 and "data-save-version" in editor.text
        assert 'data-latest="1"' in editor.text

        saved = browser.post(
            f"/scripts/{script_id}/versions",
            data=_form(name, [row], body="echo v2\r\n", note="second"),
        )
        assert saved.status_code == 303
        first = browser.get(f"/scripts/{script_id}?version=1")
        assert 'data-old-version="1"' in first.text and "STEWARD_PARAM_HOST" in first.text

        renamed = browser.post(
            f"/scripts/{script_id}", data={"name": name + "-x", "description": ""}
        )
        assert renamed.status_code == 303
        archived = browser.post(f"/scripts/{script_id}/archive", data={"archived": "1"})
        assert archived.status_code == 303
        assert "data-archived" in browser.get(f"/scripts/{script_id}").text
        assert name not in browser.get("/scripts").text
        assert name in browser.get("/scripts?archived=true").text
        korean = browser.get(f"/scripts/{script_id}?lang=ko")
        assert "스크립트" in korean.text and "버전" in korean.text

    with login(server, tenant) as api:
        detail = api.get(f"/api/v1/scripts/{script_id}").json()
    assert detail["latest"]["body"] == "echo v2\n"  # CRLF from the browser stored as LF
    assert detail["latest"]["interpreter"] == "bash"
    assert detail["latest"]["parameters"][0]["required"] is True
    assert detail["archived"] is True and detail["name"] == name + "-x"


def test_viewer_and_other_tenant_are_refused(
    server: LiveServer, seeder: Seeder, tenant: SeededTenant
) -> None:
    with login(server, tenant) as api:
        script_id = api.post(
            "/api/v1/scripts", json=script_body(name=f"p-{uuid.uuid4().hex[:6]}")
        ).json()["id"]
    with _console(server, tenant, seeder.user(tenant, "VIEWER")) as viewer:
        assert viewer.get("/scripts").status_code == 403
        assert viewer.get(f"/scripts/{script_id}").status_code == 403
        refused = viewer.post("/scripts", data=_form("x", []))
        assert refused.status_code == 403
    with _console(server, tenant, seeder.user(tenant, "ENGINEER")) as engineer:
        page = engineer.get(f"/scripts/{script_id}")
        assert page.status_code == 200 and "data-save" in page.text
    with _console(server, seeder.tenant()) as stranger:
        assert stranger.get(f"/scripts/{script_id}").status_code == 404
        moved = stranger.post(f"/scripts/{script_id}/archive", data={"archived": "1"})
        assert moved.status_code == 404
