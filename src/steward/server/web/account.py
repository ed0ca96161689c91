"""One's own account: profile, password, sessions and API tokens (two-factor set-up and step-up
are in `account_mfa.py`). Every change goes through `accounts/actions.py`, audited like the API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response

from steward.server.accounts import actions, sessions, tokens
from steward.server.accounts.permissions import Permission
from steward.server.accounts.policy import security_settings
from steward.server.accounts.service import change_password
from steward.server.accounts.tokens import MAX_LIFETIME_DAYS
from steward.server.audit.auditor import Auditor
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.errors import InvalidInput, PermissionDenied
from steward.server.runtime import Runtime
from steward.server.web.i18n import N_
from steward.server.web.page import LOGIN, Page, PageRoute, SignedInPage
from steward.server.web.security import clear_session_cookie

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/account"
DONE = {
    "password": N_("Your password was changed. Your other sessions were signed out."),
    "mfa_disabled": N_("Two-factor authentication is off."),
    "session_revoked": N_("The session was signed out."),
    "token_revoked": N_("The token was revoked."),
}
# Service error code -> what to tell the user.
ERRORS = {
    "wrong_password": N_("The current password is wrong."),
    "weak_password": N_(
        "Choose a password of at least %(length)d characters that is not easy to guess "
        "(not a common password, not your e-mail address)."
    ),
    "invalid_name": N_("Give the token a name (at most 100 characters)."),
    "invalid_expiry": N_("A token expires within 1 to 366 days."),
    "invalid_permissions": N_("Choose at least one of your own permissions for the token."),
    "invalid_code": N_("That code is not valid. Try the current one."),
    "mfa_required": N_(
        "Your organisation requires two-factor authentication: it cannot be turned off."
    ),
    "rate_limited": N_("Too many wrong codes. Try again in a minute."),
}
INVALID = N_("Some of the values sent are not valid.")
Password = Annotated[str, Form(max_length=1024)]


def page_auditor(page: Page, runtime: Runtime) -> Auditor:
    return auditor_for(page.request, runtime, page.me)


async def end_transaction(session: SessionDep, page: Page) -> None:
    """Undo a refused change; the tenant the page shows is read again (rollback expires it)."""
    await session.rollback()
    if page.tenant is not None and page.tenant in session:
        await session.refresh(page.tenant)


def error_text(page: Page, code: str, **variables: object) -> str:
    return page.gettext(ERRORS.get(code, INVALID), **variables)


async def render_account(
    page: Page,
    session: SessionDep,
    *,
    status: int = 200,
    done: str = "",
    error: str | None = None,
    error_section: str = "",
    values: dict[str, Any] | None = None,
    **extra: Any,
) -> Response:
    """The account page; `error_section` says which form the error belongs to."""
    principal = page.me
    user, tenant = await actions.user_and_tenant(session, principal.user_id)
    form = {"token_name": "", "token_permissions": [], "token_days": 90, **(values or {})}
    return page.render(
        "account/page.html",
        status_code=status,
        user=user,
        mfa_required=security_settings(tenant.settings).mfa_required_for(user.role),
        permissions=sorted(p.value for p in principal.permissions),
        all_permissions=[p.value for p in Permission],
        sessions=await sessions.list_sessions(session, principal.user_id),
        current_session=principal.session_id,
        tokens=await tokens.list_tokens(session, principal.user_id),
        done=page.gettext(DONE[done]) if done in DONE else None,
        error=error,
        error_section=error_section,
        values=form,
        max_days=MAX_LIFETIME_DAYS,
        **extra,
    )


@router.get(URL)
async def account(
    page: SignedInPage, session: SessionDep, done: Annotated[str, Query(max_length=32)] = ""
) -> Response:
    return await render_account(page, session, done=done)


@router.post(f"{URL}/password")
async def set_password(
    page: SignedInPage,
    session: SessionDep,
    runtime: RuntimeDep,
    current_password: Password = "",
    new_password: Password = "",
) -> Response:
    principal = page.me
    actions.session_only(principal)
    _, tenant = await actions.user_and_tenant(session, principal.user_id)
    policy = security_settings(tenant.settings)
    auditor = page_auditor(page, runtime)
    try:
        await change_password(
            session,
            principal,
            auditor,
            current=current_password,
            new=new_password,
            policy=policy,
        )
    except (PermissionDenied, InvalidInput) as exc:
        await end_transaction(session, page)
        if exc.code not in {"wrong_password", "weak_password"}:
            raise
        message = error_text(page, exc.code, length=policy.password_min_length)
        return await render_account(
            page, session, status=422, error=message, error_section="password"
        )
    return RedirectResponse(f"{URL}?done=password", status_code=303)


# ---- sessions --------------------------------------------------------------------------------


@router.post(f"{URL}/sessions/{{session_id}}/revoke")
async def revoke_session(
    session_id: uuid.UUID, page: SignedInPage, session: SessionDep, runtime: RuntimeDep
) -> Response:
    principal = page.me
    await actions.revoke_own_session(session, page_auditor(page, runtime), principal, session_id)
    if session_id == principal.session_id:  # this very session: signed out
        return _signed_out(page)
    return RedirectResponse(f"{URL}?done=session_revoked", status_code=303)


@router.post(f"{URL}/sessions/revoke-all")
async def revoke_all_sessions(
    page: SignedInPage, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """Log out everywhere, here included."""
    await actions.log_out_everywhere(session, page_auditor(page, runtime), page.me)
    return _signed_out(page)


def _signed_out(page: Page) -> Response:
    response = RedirectResponse(LOGIN, status_code=303)
    clear_session_cookie(response, page.request)
    return response


# ---- API tokens ------------------------------------------------------------------------------


@router.post(f"{URL}/tokens")
async def create_token(
    page: SignedInPage,
    session: SessionDep,
    runtime: RuntimeDep,
    name: Annotated[str, Form(max_length=1000)] = "",
    permissions: Annotated[list[str] | None, Form(max_length=len(Permission))] = None,
    expires_in_days: Annotated[str, Form(max_length=8)] = "90",
) -> Response:
    chosen = [p for p in permissions or [] if len(p) <= 64]
    values = {"token_name": name, "token_permissions": chosen, "token_days": expires_in_days}
    try:
        try:
            days = int(expires_in_days)
        except ValueError:
            raise InvalidInput("not a number of days", code="invalid_expiry") from None
        issued = await actions.create_token(
            session,
            page_auditor(page, runtime),
            page.me,
            name=name,
            permissions=chosen,
            expires_in_days=days,
        )
    except InvalidInput as exc:
        await end_transaction(session, page)
        return await render_account(
            page,
            session,
            status=422,
            error=error_text(page, exc.code),
            error_section="tokens",
            values=values,
        )
    return await render_account(page, session, status=201, new_token=issued.secret)


@router.post(f"{URL}/tokens/{{token_id}}/revoke")
async def revoke_token(
    token_id: uuid.UUID, page: SignedInPage, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await actions.revoke_token(session, page_auditor(page, runtime), page.me, token_id)
    return RedirectResponse(f"{URL}?done=token_revoked", status_code=303)
