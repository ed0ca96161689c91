"""Two-factor authentication in the console: set-up (also for a session that may do nothing
else until it is done), turning it off, new recovery codes, and the step-up page."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from steward.server.accounts import actions
from steward.server.accounts.models import UserSession
from steward.server.accounts.principal import utcnow
from steward.server.accounts.service import step_up
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import Conflict, RateLimited, Unauthorized
from steward.server.web.account import (
    URL,
    end_transaction,
    error_text,
    page_auditor,
    render_account,
)
from steward.server.web.page import MFA_SETUP, Page, PageRoute, SignedInPage, safe_next
from steward.server.web.security import set_session_cookie

router = APIRouter(route_class=PageRoute, include_in_schema=False)

STEP_UP = "/step-up"
SECOND_FACTOR = f"{URL}/second-factor"  # outside MFA_SETUP: a set-up-only session cannot use it
Code = Annotated[str, Form(max_length=64)]
Next = Annotated[str, Form(alias="next", max_length=2048)]


def _after_setup(back_to: str) -> str:
    """Where the set-up goes on to: the page asked for, else the account page."""
    return safe_next(back_to) if back_to else URL


async def _setup_page(
    page: Page, session: SessionDep, back_to: str, *, error: str | None = None, status: int = 200
) -> Response:
    user, _ = await actions.user_and_tenant(session, page.me.user_id)
    if user.mfa_enabled:
        return RedirectResponse(URL, status_code=303)
    setup = await actions.start_mfa_setup(session, page.me, reuse_pending=True)
    return page.render(
        "account/mfa.html",
        status_code=status,
        secret=setup.secret,
        qr_svg=Markup(setup.qr_svg),  # noqa: S704  # segno's SVG of the otpauth URI
        next=back_to,
        error=error,
    )


@router.get(MFA_SETUP)
async def mfa_setup(
    page: SignedInPage,
    session: SessionDep,
    back_to: Annotated[str, Query(alias="next", max_length=2048)] = "",
) -> Response:
    """The QR code and the secret to scan, and a field for the first code."""
    return await _setup_page(page, session, back_to)


@router.post(MFA_SETUP)
async def mfa_confirm(
    page: SignedInPage,
    session: SessionDep,
    runtime: RuntimeDep,
    code: Code = "",
    back_to: Next = "",
) -> Response:
    """The first code turns MFA on: the recovery codes are shown once, the session rotated."""
    auditor = page_auditor(page, runtime)
    try:
        result = await actions.confirm_mfa(session, runtime, auditor, page.me, code)
    except Unauthorized as exc:
        await end_transaction(session, page)
        if exc.code != "invalid_code":
            raise
        return await _setup_page(
            page, session, back_to, error=error_text(page, exc.code), status=422
        )
    except Conflict:  # not started, or already on (another tab finished it)
        await end_transaction(session, page)
        return await _setup_page(
            page, session, back_to, error=error_text(page, "invalid_code"), status=422
        )
    response = page.render(
        "account/recovery_codes.html",
        codes=result.recovery_codes,
        continue_to=_after_setup(back_to),
    )
    assert result.access_token is not None
    # The rotated session ends when its predecessor would have: so does the cookie.
    previous = await session.get(UserSession, page.me.session_id)
    assert previous is not None
    max_age = max(1, math.floor((previous.expires_at - utcnow()).total_seconds()))
    set_session_cookie(response, page.request, result.access_token, max_age)
    return response


@router.post(f"{SECOND_FACTOR}/disable")
async def mfa_disable(
    page: SignedInPage, session: SessionDep, runtime: RuntimeDep, code: Code = ""
) -> Response:
    try:
        await actions.disable_mfa(session, page_auditor(page, runtime), page.me, code)
    except (Conflict, Unauthorized) as exc:
        if exc.code not in {"invalid_code", "mfa_required"}:
            raise
        await end_transaction(session, page)
        return await render_account(
            page, session, status=422, error=error_text(page, exc.code), error_section="mfa"
        )
    return RedirectResponse(f"{URL}?done=mfa_disabled", status_code=303)


@router.post(f"{SECOND_FACTOR}/recovery-codes")
async def mfa_recovery_codes(
    page: SignedInPage, session: SessionDep, runtime: RuntimeDep, code: Code = ""
) -> Response:
    try:
        codes = await actions.new_recovery_codes(
            session, page_auditor(page, runtime), page.me, code
        )
    except Unauthorized as exc:
        if exc.code != "invalid_code":
            raise
        await end_transaction(session, page)
        return await render_account(
            page, session, status=422, error=error_text(page, exc.code), error_section="mfa"
        )
    return page.render("account/recovery_codes.html", codes=codes, continue_to=URL)


# ---- step-up ---------------------------------------------------------------------------------


def _step_up_page(
    page: Page, back_to: str, *, error: str | None = None, status: int = 200
) -> Response:
    return page.render(
        "account/step_up.html",
        status_code=status,
        next=safe_next(back_to),
        mfa_enabled=page.me.mfa_enabled,
        error=error,
    )


@router.get(STEP_UP)
async def step_up_form(
    page: SignedInPage, back_to: Annotated[str, Query(alias="next", max_length=2048)] = ""
) -> Response:
    return _step_up_page(page, back_to)


@router.post(STEP_UP)
async def step_up_confirm(
    page: SignedInPage,
    session: SessionDep,
    runtime: RuntimeDep,
    code: Code = "",
    back_to: Next = "",
) -> Response:
    """A fresh code: the session is rotated and marked fresh, then on to `next`."""
    if not page.me.mfa_enabled:  # nothing to confirm with: the page says so
        return _step_up_page(page, back_to)
    try:
        result = await step_up(
            session,
            runtime.lockout,
            runtime.settings,
            page_auditor(page, runtime),
            page.me,
            code,
        )
    except RateLimited:
        return _step_up_page(page, back_to, error=error_text(page, "rate_limited"), status=429)
    except Unauthorized as exc:
        if exc.code != "invalid_code":
            raise
        return _step_up_page(page, back_to, error=error_text(page, exc.code), status=422)
    assert result.access_token is not None
    response = RedirectResponse(safe_next(back_to), status_code=303)
    set_session_cookie(response, page.request, result.access_token, result.expires_in)
    return response
