"""The platform console in Chromium: a platform administrator made with the CLI signs in on the
bare domain, creates an organisation, sees it with its counts, and its link leads to the
organisation's own sign-in page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Installation

pytestmark = pytest.mark.e2e
PASSWORD = "platform-e2e-pass-1"


def test_platform_page_in_chromium(installation: Installation, browser: Any) -> None:
    email = f"root-{uuid.uuid4().hex[:6]}@platform.example"
    made = installation.steward(
        "platform-admin", "create", email, "--password-stdin", input=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    platform = installation.tenant_url(None)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{platform}/platform")
    page.wait_for_url(f"{platform}/platform/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{platform}/platform")
    assert "Organisations" in page.locator("h1").inner_text()

    slug = f"lab{uuid.uuid4().hex[:6]}"
    page.fill("#slug", slug)
    page.fill("#name", "Science Lab")
    page.fill("#admin_email", f"teacher@{slug}.example")
    page.fill("#admin_password", "lab-lantern-4471")
    page.fill("#timezone", "Asia/Seoul")
    page.click("form[action='/platform/tenants'] button[type=submit]")
    page.wait_for_url(f"{platform}/platform?done=created")
    row = page.locator(f"tr[data-tenant={slug}]")
    assert "Science Lab" in row.inner_text()
    assert row.locator("[data-devices]").inner_text() == "0"

    page.goto(f"{platform}/platform?lang=ko")
    assert "조직" in page.locator("h1").inner_text()

    page.locator(f"tr[data-tenant={slug}] a").click()
    page.wait_for_url(f"{installation.tenant_url(slug)}/login")
    assert page.locator("#tenant-name").inner_text() == "Science Lab"
    page.fill("input[name=email]", f"teacher@{slug}.example")
    page.fill("input[name=password]", "lab-lantern-4471")
    page.click("button[type=submit]")
    page.wait_for_url(f"{installation.tenant_url(slug)}/devices")
    assert errors == []
    page.close()
