"""The organisation profile page: everyone with device access reads it, administrators edit it."""

from __future__ import annotations

import httpx
import pytest

from steward.server.runtime import Runtime
from steward.server.tenancy.service import get_tenant_by_slug
from tests.web.support import World, csrf_token, login

URL = "/settings/organisation"
FORM = {
    "name": "Acme Pharmacy",
    "locale": "ko",
    "timezone": "Asia/Seoul",
    "business_registration_number": "123-45-67890",
    "contact_name": "Kim Minji",
    "contact_phone": "+82 2-123-4567",
    "contact_email": "Minji@Acme.test",
    "address": "1 Sejong-daero, Jung-gu, Seoul",
    "notes": "Open 9-18. <b>Ring twice</b>",
}


async def _post(http: httpx.AsyncClient, **changes: str) -> httpx.Response:
    form = await http.get(URL)
    return await http.post(URL, data={**FORM, **changes, "csrf_token": csrf_token(form.text)})


async def test_admin_saves_the_profile(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    page = await admin.get(URL)
    assert page.status_code == 200
    assert 'value="Acme"' in page.text and "Asia/Seoul" in page.text

    response = await _post(admin)
    assert response.status_code == 303
    assert response.headers["location"] == f"{URL}?saved=1"
    async with runtime.system_sessions() as session:
        tenant = await get_tenant_by_slug(session, "acme")
    assert tenant.name == "Acme Pharmacy" and tenant.locale == "ko"
    assert tenant.business_registration_number == "123-45-67890"
    assert tenant.contact_email == "minji@acme.test"
    assert tenant.notes == FORM["notes"]
    assert tenant.slug == "acme" and tenant.status == "active"
    async with runtime.system_sessions() as session:
        assert (await get_tenant_by_slug(session, "other")).name == "Other"  # only its own

    shown = await admin.get(f"{URL}?saved=1&lang=en")
    assert "The organisation profile was saved." in shown.text
    assert "Open 9-18. &lt;b&gt;Ring twice&lt;/b&gt;" in shown.text
    assert 'value="Kim Minji"' in shown.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus_Mons", "Unknown time zone."),
        ("contact_email", "not-an-address", "Enter a valid e-mail address."),
        ("name", "   ", "Enter a display name of 1 to 200 characters."),
        ("locale", "fr", "Pick a language from the list."),
        ("contact_phone", "call me", "Check the business registration number"),
    ],
)
async def test_bad_input_is_explained_and_kept(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, field: str, value: str, message: str
) -> None:
    response = await _post(admin, **{field: value})
    assert response.status_code == 422
    assert message in response.text
    assert "Kim Minji" in response.text and "1 Sejong-daero" in response.text  # nothing lost
    if field not in {"locale", "contact_phone"}:
        assert f'value="{value}"' in response.text
    async with runtime.system_sessions() as session:
        tenant = await get_tenant_by_slug(session, "acme")
    assert tenant.name == "Acme" and tenant.contact_name == ""  # nothing saved


async def test_viewer_reads_but_cannot_save(viewer: httpx.AsyncClient, runtime: Runtime) -> None:
    page = await viewer.get(URL)
    assert page.status_code == 200
    assert "<fieldset disabled>" in page.text
    assert "Only administrators can change the organisation profile." in page.text
    response = await _post(viewer)
    assert response.status_code == 403
    async with runtime.system_sessions() as session:
        assert (await get_tenant_by_slug(session, "acme")).name == "Acme"


async def test_customer_cannot_see_it(client: httpx.AsyncClient, world: World) -> None:
    await login(client, "customer@acme.test")
    assert (await client.get(URL)).status_code == 403


async def test_saving_without_csrf_is_refused(admin: httpx.AsyncClient, runtime: Runtime) -> None:
    response = await admin.post(URL, data=FORM)
    assert response.status_code == 403
    assert "Request refused" in response.text
    async with runtime.system_sessions() as session:
        assert (await get_tenant_by_slug(session, "acme")).name == "Acme"


async def test_korean(admin: httpx.AsyncClient) -> None:
    html = (await admin.get(f"{URL}?lang=ko")).text
    assert '<html lang="ko"' in html
    for korean in ("조직", "시간대", "사업자등록번호", "담당자", "주소", "메모", "저장"):
        assert korean in html


async def test_navbar_links_to_it(viewer: httpx.AsyncClient) -> None:
    html = (await viewer.get("/devices")).text
    assert f'href="{URL}"' in html and 'href="/groups"' in html
