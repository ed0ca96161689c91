"""Both languages: choosing one, rendering it, and complete catalogues."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from sqlalchemy import update
from starlette.requests import Request

from steward.server.accounts.models import User
from steward.server.runtime import Runtime
from steward.server.tenancy.models import Tenant
from steward.server.tenancy.service import SUPPORTED_LOCALES
from steward.server.web import i18n
from tests.web.support import World, login

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "steward" / "server" / "web"


async def test_lang_parameter_renders_korean_and_is_remembered(
    admin: httpx.AsyncClient, world: World
) -> None:
    response = await admin.get("/devices?lang=ko")
    assert response.status_code == 200
    html = response.text
    assert '<html lang="ko"' in html
    for korean in ("장치", "온라인", "오프라인", "호스트 이름", "마지막 접속", "로그아웃"):
        assert korean in html
    assert admin.cookies[i18n.LANG_COOKIE] == "ko"

    page = await admin.get(f"/devices/{world.device_id}")  # no parameter: the cookie
    assert '<html lang="ko"' in page.text and "명령 실행" in page.text and "사양" in page.text
    partial = await admin.get("/devices/table", headers={"HX-Request": "true"})
    assert "온라인" in partial.text

    english = await admin.get("/devices?lang=en")
    assert '<html lang="en"' in english.text and "Online" in english.text


async def test_unknown_lang_is_ignored(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/devices?lang=xx")
    assert '<html lang="en"' in response.text
    assert i18n.LANG_COOKIE not in admin.cookies


async def test_login_page_follows_the_browser(client: httpx.AsyncClient) -> None:
    response = await client.get("/login", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"})
    assert '<html lang="ko"' in response.text and "비밀번호" in response.text


async def test_tenant_locale_then_user_locale(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    async with runtime.system_sessions() as session:
        await session.execute(update(Tenant).where(Tenant.slug == "acme").values(locale="ko"))
        await session.commit()
    await login(client, "admin@acme.test")
    assert '<html lang="ko"' in (await client.get("/devices")).text

    async with runtime.system_sessions() as session:
        await session.execute(
            update(User).where(User.email == "admin@acme.test").values(locale="en")
        )
        await session.commit()
    assert (
        '<html lang="en"' in (await client.get("/devices", headers={"Accept-Language": "ko"})).text
    )


async def test_korean_errors_and_time_words(client: httpx.AsyncClient, world: World) -> None:
    await client.get("/login?lang=ko")
    failed = await login(client, "admin@acme.test", password="wrong password!")
    assert "이메일 또는 비밀번호가 올바르지 않습니다." in failed.text
    await login(client, "admin@acme.test")
    html = (await client.get("/devices")).text
    assert "초 전" in html  # "12초 전"
    missing = await client.get(f"/devices/{world.other_device_id}")
    assert missing.status_code == 404 and "찾을 수 없음" in missing.text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),
        ("en-GB, ko;q=0.5", "en"),
        ("fr, ko;q=0.1", "ko"),
        ("fr, de", None),
        ("ko;q=0, en;q=0.3", "en"),
        ("", None),
        ("ko;q=abc", None),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


def _request(query: str = "", cookie: str = "", accept: str = "") -> Request:
    headers = [(b"accept-language", accept.encode())]
    if cookie:
        headers.append((b"cookie", f"{i18n.LANG_COOKIE}={cookie}".encode()))
    return Request({"type": "http", "query_string": query.encode(), "headers": headers})


def test_locale_order() -> None:
    choose = i18n.choose_locale
    assert choose(_request("lang=ko", "en"), "en", "en") == ("ko", True)
    assert choose(_request(cookie="ko"), "en", "en") == ("ko", False)
    assert choose(_request(), "ko", "en") == ("ko", False)
    assert choose(_request(), None, "ko") == ("ko", False)
    assert choose(_request(accept="ko")) == ("ko", False)
    assert choose(_request()) == ("en", False)


# ---- catalogues ------------------------------------------------------------------------------


def _used_messages() -> dict[str, tuple[str, ...]]:
    """Every message the console's code and templates use, extracted as `babel.cfg` says."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    used: dict[str, tuple[str, ...]] = {}
    for _, _, message, _, _ in extract_from_dir(WEB, method_map, options_map):
        ids = (message,) if isinstance(message, str) else tuple(message)
        used[ids[0]] = ids
    return used


def _catalogue(locale: str) -> Catalog:
    with i18n.catalogue_path(locale).open("rb") as handle:
        return read_po(handle, locale=locale)


def test_extraction_finds_the_console_strings() -> None:
    used = _used_messages()
    assert len(used) > 100
    for message in ("Devices", "Run command", "Wrong e-mail or password.", "10 minutes"):
        assert message in used
    assert used["%(num)d second ago"] == ("%(num)d second ago", "%(num)d seconds ago")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_message_is_translated(locale: str) -> None:
    catalogue = _catalogue(locale)
    for msgid, ids in _used_messages().items():
        entry = catalogue.get(msgid)
        assert entry is not None, f"{locale}: {msgid!r} is missing"
        assert not entry.fuzzy, f"{locale}: {msgid!r} is fuzzy"
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert strings and all(strings), f"{locale}: {msgid!r} is not translated"
        if len(ids) > 1:
            assert isinstance(entry.id, tuple) and entry.id[1] == ids[1]
            assert len(strings) == catalogue.num_plurals


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_catalogues_are_consistent(locale: str) -> None:
    catalogue = _catalogue(locale)
    problems = [(message.id, errors) for message, errors in catalogue.check() if errors]
    assert problems == []
    assert i18n.translations(locale).gettext("Devices")  # compiles in memory


def test_korean_reads_naturally() -> None:
    korean = i18n.translations("ko")
    assert korean.gettext("Devices") == "장치"
    assert korean.gettext("Online") == "온라인"
    assert korean.gettext("Offline") == "오프라인"
    assert korean.gettext("Run command") == "명령 실행"
    assert korean.ngettext("%(num)d minute ago", "%(num)d minutes ago", 3) % {"num": 3} == "3분 전"
