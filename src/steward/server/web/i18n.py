"""Console translations: catalogues read from the `.po` files at startup, and locale choice.

Compiled `.mo` files are not kept in git: Babel compiles each catalogue in memory once.
"""

from __future__ import annotations

import functools
import gettext
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from starlette.requests import Request

from steward.server.tenancy.service import SUPPORTED_LOCALES

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DEFAULT_LOCALE = "en"
LANG_COOKIE = "steward_lang"
LANG_PARAM = "lang"
# Names shown in the language menu, each in its own language.
LANGUAGE_NAMES = {"en": "English", "ko": "한국어"}


def N_(message: str) -> str:
    """Mark a string for extraction (`N_` is the name extractors know); it is translated
    later, where the locale is known."""
    return message


def catalogue_path(locale: str) -> Path:
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po"


@functools.cache
def translations(locale: str) -> gettext.GNUTranslations:
    """The compiled catalogue of a supported locale (compiled once per process)."""
    if locale not in SUPPORTED_LOCALES:
        raise ValueError(f"unsupported locale {locale!r}")
    with catalogue_path(locale).open("rb") as handle:
        catalogue = read_po(handle, locale=locale, domain="messages")
    compiled = BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def supported(locale: str | None) -> str | None:
    """`locale` reduced to a supported language (`ko-KR` -> `ko`), or None."""
    if not locale:
        return None
    language = locale.strip().replace("_", "-").split("-", 1)[0].lower()
    return language if language in SUPPORTED_LOCALES else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an `Accept-Language` header."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag))
    for _, _, tag in sorted(weighted):
        language = supported(tag)
        if language:
            return language
    return None


def choose_locale(
    request: Request, user_locale: str | None = None, tenant_locale: str | None = None
) -> tuple[str, bool]:
    """The request's locale, and whether it came from `?lang=` (so it should be remembered).

    Order: `?lang=`, the `steward_lang` cookie, the user's locale, the tenant's, the browser's
    `Accept-Language`, then English."""
    asked = supported(request.query_params.get(LANG_PARAM))
    if asked:
        return asked, True
    for candidate in (request.cookies.get(LANG_COOKIE), user_locale, tenant_locale):
        language = supported(candidate)
        if language:
            return language, False
    return from_accept_language(request.headers.get("accept-language")) or DEFAULT_LOCALE, False
