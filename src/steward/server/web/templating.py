"""Jinja2 environments of the console: one per locale, autoescaped, with display filters.

Templates translate with `_()`, `gettext()`, `ngettext()` ("newstyle" gettext): variables are
passed as keywords, `_("%(n)d devices", n=count)`, are escaped, and every string is %-formatted,
so a literal percent sign is written `%%`.
"""

from __future__ import annotations

import gettext
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from steward import __version__
from steward.server.db.base import utcnow
from steward.server.tenancy.service import SUPPORTED_LOCALES
from steward.server.web.i18n import translations

TEMPLATES_DIR = Path(__file__).parent / "templates"
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
NO_VALUE = "—"


class Templates:
    """Compiled templates for every supported locale (gettext is bound per environment)."""

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self._environments = {
            locale: _environment(directory, translations(locale)) for locale in SUPPORTED_LOCALES
        }

    def render(self, locale: str, name: str, context: dict[str, Any]) -> str:
        return self._environments[locale].get_template(name).render(context)


def _environment(directory: Path, catalogue: gettext.GNUTranslations) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory),
        # Everything agents send is untrusted: escape every value, in every template.
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    filters = DisplayFilters(catalogue)
    env.filters.update(
        localtime=filters.localtime,
        ago=filters.ago,
        filesize=format_bytes,
        percent=format_percent,
        duration=filters.duration,
        path_part=path_part,
    )
    env.globals["asset_version"] = __version__
    env.globals["NO_VALUE"] = NO_VALUE
    return env


def path_part(value: str) -> str:
    """One segment of a URL path: every reserved character encoded, `/` included."""
    return quote(value, safe="")


def format_bytes(value: int | float | None) -> str:
    if value is None:
        return NO_VALUE
    size = float(value)
    for unit in _BYTE_UNITS:
        if abs(size) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_percent(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.0f} %"


class DisplayFilters:
    """Filters whose output depends on the locale (and, through the context, the time zone)."""

    def __init__(self, catalogue: gettext.GNUTranslations) -> None:
        self.gettext = catalogue.gettext
        self.ngettext = catalogue.ngettext

    @pass_context
    def localtime(self, context: Context, value: datetime | None, fmt: str = "") -> str:
        """A UTC timestamp in the tenant's time zone (`tz` of the template context)."""
        if value is None:
            return NO_VALUE
        zone: tzinfo | None = context.get("tz")
        return value.astimezone(zone).strftime(fmt or "%Y-%m-%d %H:%M:%S")

    def ago(self, value: datetime | None) -> str:
        if value is None:
            return NO_VALUE
        seconds = int((utcnow() - value).total_seconds())
        if seconds < 5:
            return self.gettext("just now")
        if seconds < 60:
            return self.ngettext("%(num)d second ago", "%(num)d seconds ago", seconds) % {
                "num": seconds
            }
        minutes = seconds // 60
        if minutes < 60:
            return self.ngettext("%(num)d minute ago", "%(num)d minutes ago", minutes) % {
                "num": minutes
            }
        hours = minutes // 60
        if hours < 48:
            return self.ngettext("%(num)d hour ago", "%(num)d hours ago", hours) % {"num": hours}
        days = hours // 24
        return self.ngettext("%(num)d day ago", "%(num)d days ago", days) % {"num": days}

    def duration(self, seconds: int | float | None) -> str:
        """An uptime: `3 d 4 h`, `2 h 5 min`, `42 s` (in the locale's words)."""
        if seconds is None:
            return NO_VALUE
        total = int(seconds)
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes = rest // 60
        if days:
            return self.gettext("%(days)d d %(hours)d h") % {"days": days, "hours": hours}
        if hours:
            return self.gettext("%(hours)d h %(minutes)d min") % {
                "hours": hours,
                "minutes": minutes,
            }
        if minutes:
            return self.gettext("%(minutes)d min") % {"minutes": minutes}
        return self.gettext("%(seconds)d s") % {"seconds": total}
