"""The security settings page (tenant.manage)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from steward.server.audit.models import AuditEvent
from steward.server.runtime import Runtime
from steward.server.tenancy.service import get_tenant_by_slug
from tests.web.support import World, csrf_token

URL = "/settings/security"
FORM = {
    "mfa_required": "roles",
    "mfa_roles": ["ADMIN", "PM"],
    "step_up": "required",
    "step_up_max_age_s": "600",
    "session_idle_timeout_min": "30",
    "session_lifetime_h": "8",
    "password_min_length": "14",
    "ip_allowlist": "127.0.0.0/8\n10.0.0.0/8",
}


async def _post(http: httpx.AsyncClient, **changes: object) -> httpx.Response:
    page = await http.get(URL)
    return await http.post(URL, data={**FORM, **changes, "csrf_token": csrf_token(page.text)})


async def test_admin_saves_the_settings(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    page = await admin.get(URL)
    assert page.status_code == 200 and 'value="if_enrolled" checked' in page.text
    saved = await _post(admin)
    assert saved.status_code == 303 and saved.headers["location"] == f"{URL}?saved=1"
    async with runtime.system_sessions() as session:
        tenant = await get_tenant_by_slug(session, "acme")
        other = await get_tenant_by_slug(session, "other")
        events = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "settings.security")
            )
        )
    security = tenant.settings["security"]
    assert security["mfa_required"] == "roles" and security["mfa_roles"] == ["ADMIN", "PM"]
    assert security["ip_allowlist"] == ["127.0.0.0/8", "10.0.0.0/8"]
    assert security["password_min_length"] == 14
    assert "security" not in (other.settings or {})
    assert len(events) == 1 and events[0].risk == "high"
    shown = await admin.get(f"{URL}?saved=1")
    assert "The security settings were saved." in shown.text and "10.0.0.0/8" in shown.text
    assert "보안" in (await admin.get(f"{URL}?lang=ko")).text


async def test_the_allow_list_cannot_lock_you_out(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    refused = await _post(admin, ip_allowlist="203.0.113.0/24")
    assert refused.status_code == 409
    assert "would lock you out" in refused.text and "203.0.113.0/24" in refused.text
    async with runtime.system_sessions() as session:
        assert "security" not in ((await get_tenant_by_slug(session, "acme")).settings or {})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ip_allowlist", "not-a-network", "one IP network per line"),
        ("step_up_max_age_s", "5", "from 30 to 3600"),
        ("session_idle_timeout_min", "abc", "from 5 to 1440"),
        ("session_lifetime_h", "9999", "from 1 to 720"),
        ("password_min_length", "4", "from 10 to 128"),
        ("mfa_required", "sometimes", "Pick who must use"),
        ("step_up", "always", "Pick a step-up rule"),
        ("mfa_roles", "GOD", "Pick roles from the list."),
    ],
)
async def test_bad_values_are_explained(
    admin: httpx.AsyncClient, world: World, field: str, value: str, message: str
) -> None:
    response = await _post(admin, **{field: value})
    assert response.status_code == 422 and message in response.text


async def test_viewer_is_refused(viewer: httpx.AsyncClient, world: World) -> None:
    assert (await viewer.get(URL)).status_code == 403
    assert 'href="/settings/security"' not in (await viewer.get("/devices")).text


async def test_csrf_is_required(admin: httpx.AsyncClient, world: World) -> None:
    response = await admin.post(URL, data=FORM)
    assert response.status_code == 403 and "Request refused" in response.text
