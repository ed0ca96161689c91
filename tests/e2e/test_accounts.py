"""Accounts in the console, in Chromium, on the tenant's own host: an ADMIN turns on two-factor
authentication and signs in with it, makes an ENGINEER with a scope, requires MFA of ENGINEERs
(and cannot lock themself out with the IP allow-list), the ENGINEER is sent to set up MFA
first, the audit log shows it all with its chain intact, and the console speaks Korean.

The tests run in order and share one server, one tenant and the ADMIN's browser context: each
step builds on the ones before it, as a person using the console would."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import Installation

pytestmark = pytest.mark.e2e
PASSWORD = "e2e-password-123"
ENGINEER_PASSWORD = "engineer-password-456"
GROUP = "lab-accounts"
TIMEOUT_MS = 10_000


@dataclass
class Site:
    """The tenant under test and what the steps learn along the way."""

    installation: Installation
    tenant: str
    admin_email: str
    page: Any  # the ADMIN's page, in its own browser context
    secret: str = ""
    recovery_codes: list[str] = field(default_factory=list)
    engineer_email: str = ""
    engineer_id: str = ""

    def url(self, path: str) -> str:
        return f"{self.installation.tenant_url(self.tenant)}{path}"


@pytest.fixture(scope="module")
def site(installation: Installation, browser: Any) -> Iterator[Site]:
    tenant, email = f"acct{uuid.uuid4().hex[:6]}", "admin@accounts.example"
    made = installation.steward("tenant", "create", tenant, "--name", "Accounts")
    assert made.returncode == 0, made.stderr
    made = installation.steward(
        "user", "create", "--tenant", tenant, "--email", email, "--role", "ADMIN",
        "--password-stdin", input=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield Site(installation, tenant, email, page)
    context.close()
    assert errors == []


def _log_in(page: Any, site: Site, email: str, password: str) -> None:
    """E-mail and password on the tenant's own sign-in page (the bare-domain organisation
    chooser is covered by the walking skeleton)."""
    page.goto(site.url("/login"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def _sign_out(page: Any) -> None:
    page.click("nav a.dropdown-toggle")
    page.click("form[action='/logout'] button[type=submit]")
    page.wait_for_url("**/login**")


def test_admin_sets_up_mfa_and_signs_in_with_it(site: Site) -> None:
    page = site.page
    _log_in(page, site, site.admin_email, PASSWORD)
    page.wait_for_url("**/devices")

    page.goto(site.url("/account"))
    assert page.locator("#mfa [data-mfa-status=off]").is_visible()
    page.click("#mfa a[href='/account/mfa']")
    page.wait_for_url("**/account/mfa")
    assert page.locator("[data-qr] svg").is_visible()
    site.secret = page.locator("#mfa-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", site.secret), site.secret

    page.fill("#code", "000000" if pyotp.TOTP(site.secret).now() != "000000" else "111111")
    page.click("form[action='/account/mfa'] button[type=submit]")
    assert "not valid" in page.locator("[data-error]").inner_text()
    assert page.locator("#mfa-secret").inner_text().strip() == site.secret  # same pending secret

    page.fill("#code", pyotp.TOTP(site.secret).now())
    page.click("form[action='/account/mfa'] button[type=submit]")
    codes = page.locator("[data-recovery-codes] li")
    codes.first.wait_for()
    site.recovery_codes = [code.strip() for code in codes.all_inner_texts()]
    assert len(site.recovery_codes) == 10 and len(set(site.recovery_codes)) == 10
    page.click("a.btn-primary[href='/account']")
    page.wait_for_url("**/account")
    assert page.locator("#mfa [data-mfa-status=on]").is_visible()
    assert "10 recovery codes left" in page.locator("#mfa").inner_text()

    _sign_out(page)
    _log_in(page, site, site.admin_email, PASSWORD)
    page.wait_for_url("**/login/mfa")
    page.fill("#code", "123456" if pyotp.TOTP(site.secret).now() != "123456" else "654321")
    page.click("form[action='/login/mfa'] button[type=submit]")
    assert page.locator(".alert-danger").is_visible()
    assert page.url.endswith("/login/mfa")
    # The set-up used this 30-second step's code, and a code is good once: a recovery code
    # signs in whatever the clock says.
    page.fill("#code", site.recovery_codes[0])
    page.click("form[action='/login/mfa'] button[type=submit]")
    page.wait_for_url("**/devices")
    page.goto(site.url("/account"))
    assert "9 recovery codes left" in page.locator("#mfa").inner_text()

    # The app's code: the next step's is within the server's one-step drift allowance and
    # newer than the step used at set-up, so it is good whichever step the clock is in now.
    _sign_out(page)
    _log_in(page, site, site.admin_email, PASSWORD)
    page.wait_for_url("**/login/mfa")
    page.fill("#code", pyotp.TOTP(site.secret).at(time.time() + 30))
    page.click("form[action='/login/mfa'] button[type=submit]")
    page.wait_for_url("**/devices")


def test_admin_creates_an_engineer_with_a_scope(site: Site) -> None:
    page = site.page
    page.goto(site.url("/groups"))
    page.fill("form[action='/groups'] input[name=name]", GROUP)
    page.click("form[action='/groups'] button[type=submit]")
    page.wait_for_url("**/groups?done=created")

    site.engineer_email = f"engineer-{uuid.uuid4().hex[:6]}@accounts.example"
    page.goto(site.url("/users"))
    page.fill("#new-email", site.engineer_email)
    page.fill("#new-name", "Eve Engineer")
    page.select_option("#new-role", "ENGINEER")
    page.fill("#new-password", ENGINEER_PASSWORD)
    page.click("form[action='/users'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/users/[^/?]+\?done=created$"))
    site.engineer_id = page.url.split("/users/", 1)[1].split("?", 1)[0]
    assert page.locator("[data-done]").is_visible()
    assert page.locator("h1").inner_text().strip() == site.engineer_email

    page.goto(site.url("/users"))
    row = page.locator(f"tr[data-user='{site.engineer_id}']")
    assert "Eve Engineer" in row.inner_text()
    row.locator(f"a[href='/users/{site.engineer_id}']").click()
    page.wait_for_url(f"**/users/{site.engineer_id}")
    assert page.locator("#role").input_value() == "ENGINEER"
    page.check("#access-limited")
    page.select_option("#groups", label=GROUP)
    page.check("#approval_required")
    page.click(f"form[action='/users/{site.engineer_id}'] button[type=submit]")
    page.wait_for_url(f"**/users/{site.engineer_id}?done=saved")
    assert page.locator("[data-done]").is_visible()
    assert page.locator("#access-limited").is_checked()
    assert page.locator("#groups option:checked").all_inner_texts() == [GROUP]
    assert page.locator("#approval_required").is_checked()
    assert page.locator("#full_name").input_value() == "Eve Engineer"
    assert page.locator(f"form[action='/users/{site.engineer_id}/revoke-sessions'] button").count()
    # Reset is offered only once the user has MFA: not yet for the engineer, but for the ADMIN.
    assert not page.locator(f"form[action='/users/{site.engineer_id}/reset-mfa']").count()
    page.goto(site.url("/users"))
    admin_row = page.locator("tr[data-user]", has_text=site.admin_email)
    admin_id = admin_row.get_attribute("data-user")
    page.goto(site.url(f"/users/{admin_id}"))
    assert page.locator(f"form[action='/users/{admin_id}/reset-mfa'] button").is_visible()
    assert page.locator(f"form[action='/users/{admin_id}/revoke-sessions'] button").is_visible()


def test_admin_requires_mfa_of_engineers_and_cannot_lock_themself_out(site: Site) -> None:
    page = site.page
    page.goto(site.url("/settings/security"))
    page.check("#mfa-roles")
    page.check("#mfa-role-ENGINEER")
    page.click("form[action='/settings/security'] button[type=submit]")
    page.wait_for_url("**/settings/security?saved=1")
    assert page.locator("[data-saved]").is_visible()
    assert page.locator("#mfa-roles").is_checked()
    assert page.locator("#mfa-role-ENGINEER").is_checked()
    assert not page.locator("#mfa-role-ADMIN").is_checked()

    page.fill("#ip_allowlist", "10.0.0.0/8")
    page.click("form[action='/settings/security'] button[type=submit]")
    error = page.locator("[data-error]")
    assert "would lock you out" in error.inner_text()
    assert page.locator("#ip_allowlist").input_value().strip() == "10.0.0.0/8"  # kept to fix
    page.goto(site.url("/settings/security"))
    assert page.locator("#ip_allowlist").input_value().strip() == ""  # nothing saved
    assert page.locator("#mfa-roles").is_checked()


def test_engineer_must_set_up_mfa_first(site: Site, browser: Any) -> None:
    assert site.engineer_email, "the engineer is made by the test before"
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        _log_in(page, site, site.engineer_email, ENGINEER_PASSWORD)
        page.wait_for_url(re.compile(r".*/account/mfa(\?.*)?$"))
        assert page.locator("#mfa-secret").is_visible()
        assert page.locator("[data-qr] svg").is_visible()
        page.goto(site.url("/devices"))
        page.wait_for_url(re.compile(r".*/account/mfa(\?.*)?$"))
        assert page.locator("#mfa-secret").is_visible()
    finally:
        context.close()


def _audit_actions(page: Any) -> list[str]:
    """The action column of the audit table, top to bottom."""
    cells = page.locator("tbody tr[data-seq] td:nth-child(4)").all_inner_texts()
    return [cell.strip() for cell in cells]


def test_audit_log_shows_the_account_events(site: Site) -> None:
    page = site.page
    page.goto(site.url("/audit"))
    actions = _audit_actions(page)
    for action in ("login.success", "mfa.enable", "user.create", "user.update"):
        assert action in actions, (action, actions)
    assert "settings.security" in actions, actions
    chain = page.locator("#audit-chain[data-chain]")
    chain.wait_for()
    assert chain.get_attribute("data-chain") == "ok"
    assert "intact" in chain.inner_text()

    page.fill("#f-action", "user.")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url("**/audit?*action=user.*")
    filtered = _audit_actions(page)
    assert filtered and all(a.startswith("user.") for a in filtered), filtered
    assert {"user.create", "user.update"} <= set(filtered)


def test_console_in_korean(site: Site) -> None:
    page = site.page
    page.goto(site.url("/account?lang=ko"))
    assert page.locator("html").get_attribute("lang") == "ko"
    assert "계정" in page.locator("h1").inner_text()
    assert "2단계 인증" in page.locator("#mfa .card-header").inner_text()
    page.goto(site.url("/account"))  # remembered
    assert "계정" in page.locator("h1").inner_text()
    page.goto(site.url("/account?lang=en"))
    assert "Account" in page.locator("h1").inner_text()


def test_step_up_with_a_recovery_code_then_on(site: Site) -> None:
    """The step-up page asks for a fresh code and goes on to `next`. The admin's last TOTP
    step is used, so an unused recovery code proves it."""
    page = site.page
    page.goto(site.url("/step-up?next=/account"))
    assert page.locator("#code").is_visible()
    page.fill("#code", site.recovery_codes[1])
    page.click("form[action='/step-up'] button[type=submit]")
    page.wait_for_url("**/account")
    assert "8 recovery codes left" in page.locator("#mfa").inner_text()


def test_an_invited_user_chooses_a_password(site: Site, browser: Any) -> None:
    """A user created without a password gets a one-time link; opening it in another browser,
    they choose a password and sign in; the link is then spent."""
    page = site.page
    email = f"invited-{uuid.uuid4().hex[:6]}@accounts.example"
    page.goto(site.url("/users"))
    page.fill("#new-email", email)
    page.select_option("#new-role", "VIEWER")
    page.click("form[action='/users'] button[type=submit]")
    link = page.locator("#invite-url").input_value()
    assert "/invite/" in link and page.locator("#reinvite").is_visible()
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        invited = context.new_page()
        invited.goto(link)
        assert email in invited.locator("main").inner_text()
        invited.fill("#password", "short")
        invited.click("button[type=submit]")
        assert invited.locator(".alert-danger").is_visible()
        invited.fill("#password", "quiet-lantern-42")
        invited.click("button[type=submit]")
        invited.wait_for_url("**/login")
        invited.fill("input[name=email]", email)
        invited.fill("input[name=password]", "quiet-lantern-42")
        invited.click("button[type=submit]")
        invited.wait_for_url("**/devices")
        assert invited.goto(link).status == 404  # spent
    finally:
        context.close()
