"""The tenant's users (for holders of `user.manage`): list, create, edit role, name, activity
and scope, reset a lost second factor, sign a user out everywhere."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from steward.server.accounts import actions, invitations
from steward.server.accounts import users as service
from steward.server.accounts.models import Role, User
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.policy import security_settings
from steward.server.accounts.scope import WEEKDAYS, UserScope, parse_scope
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.devices.models import Device
from steward.server.errors import Conflict, InvalidInput
from steward.server.tenancy.models import Group, Tenant
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Manager = Annotated[Page, require_page(P.USER_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/users"
COMMAND_TYPES = ("shell", "script", "package", "power", "service", "process", "message")
WINDOW_ROWS_FREE = 2  # empty time-window rows offered below the saved ones
DEVICE_CHOICES = 1000  # devices offered by hostname; more are added by id
ERRORS = {
    "last_admin": N_("The organisation needs at least one active administrator."),
    "own_account": N_("You cannot disable your own account or change your own role."),
    "invalid_scope": N_(
        "The scope is not valid: check the groups, the device ids (one per line), the "
        "patterns and the time windows (a start and an end, HH:MM, that differ)."
    ),
    "weak_password": N_(
        "Choose a first password of at least %(length)d characters that is not easy to guess."
    ),
    "user_exists": N_("A user with this e-mail address already exists."),
    "invalid_email": N_("Enter a valid e-mail address."),
    "invalid_role": N_("Pick a role from the list."),
    "already_signed_up": N_("This user has already chosen a password."),
}
DONE = {
    "created": N_("The user was created."),
    "saved": N_("The changes were saved."),
    "mfa_reset": N_("Two-factor authentication was reset: they set it up again at next sign-in."),
    "signed_out": N_("The user was signed out everywhere."),
    "invited": N_("The user is invited: send them the link below."),
}
INVALID = N_("Some of the values sent are not valid.")


def _error(page: Page, exc: Conflict | InvalidInput, password_length: int = 10) -> str:
    return page.gettext(ERRORS.get(exc.code, INVALID), length=password_length)


async def _tenant(session: AsyncSession, page: Page) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.id == page.me.tenant_id))
    assert tenant is not None
    return tenant


# ---- list and create -------------------------------------------------------------------------


async def _list(
    page: Page,
    session: AsyncSession,
    *,
    done: str = "",
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:
    return page.render(
        "users/list.html",
        status_code=status,
        users=await service.list_users(session),
        roles=list(Role),
        done=page.gettext(DONE[done]) if done in DONE else None,
        error=error,
        values={"email": "", "full_name": "", "role": Role.VIEWER.value, **(values or {})},
    )


@router.get(URL)
async def user_list(
    page: Manager, session: SessionDep, done: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    return await _list(page, session, done=done)


@router.post(URL)
async def create_user(
    page: Manager,
    session: SessionDep,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=254)] = "",
    full_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    values = {"email": email, "full_name": full_name, "role": role}
    tenant = await _tenant(session, page)
    length = security_settings(tenant.settings).password_min_length
    try:
        if role not in Role.__members__.values():
            raise InvalidInput("not a role", code="invalid_role")
        auditor = page_auditor(page, runtime)
        if not password:
            user, secret = await actions.invite_user(
                session, auditor, tenant, email=email, role=Role(role), full_name=full_name
            )
            return await _edit(page, session, user, done="invited", invite=secret)
        user = await actions.create_user(
            session,
            auditor,
            tenant,
            email=email,
            password=password,
            role=Role(role),
            full_name=full_name,
        )
    except (Conflict, InvalidInput) as exc:  # refused before anything was added
        message = _error(page, exc, length)
        return await _list(page, session, error=message, status=exc.status_code, values=values)
    return RedirectResponse(f"{URL}/{user.id}?done=created", status_code=303)


# ---- one user --------------------------------------------------------------------------------


async def _edit(
    page: Page,
    session: AsyncSession,
    user: User,
    *,
    done: str = "",
    error: str | None = None,
    status: int = 200,
    scope: UserScope | None = None,
    form: dict[str, Any] | None = None,
    invite: str = "",
) -> Response:
    scope = scope if scope is not None else parse_scope(user.scope)
    groups = list(await session.scalars(select(Group).order_by(Group.name)))
    devices = list(
        await session.execute(
            select(Device.id, Device.hostname).order_by(Device.hostname).limit(DEVICE_CHOICES)
        )
    )
    offered = {device_id for device_id, _ in devices}
    windows = [w.model_dump() for w in scope.time_windows or []]
    windows += [{"days": [], "start": "", "end": ""}] * WINDOW_ROWS_FREE
    return page.render(
        "users/edit.html",
        status_code=status,
        user=user,
        values=form or {"full_name": user.full_name, "role": user.role, "active": user.is_active},
        scope=scope,
        roles=list(Role),
        groups=groups,
        devices=devices,
        other_device_ids=[d for d in scope.devices or [] if d not in offered],
        command_types=COMMAND_TYPES,
        weekdays=WEEKDAYS,
        windows=windows,
        done=page.gettext(DONE[done]) if done in DONE else None,
        error=error,
        is_self=user.id == page.me.user_id,
        invite_url=invite_url(page, invite) if invite else "",
        invite_expires_at=user.invite_expires_at,
    )


def invite_url(page: Page, secret: str) -> str:
    return f"{str(page.request.base_url).rstrip('/')}{invitations.INVITE_PATH}{secret}"


@router.get(f"{URL}/{{user_id}}")
async def user_detail(
    user_id: uuid.UUID,
    page: Manager,
    session: SessionDep,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    return await _edit(page, session, await service.get_user(session, user_id), done=done)


def _ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(v.strip()) for v in values if v.strip()]
    except ValueError:
        raise InvalidInput("not a valid id", code="invalid_scope") from None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def scope_from_form(form: FormData, previous: UserScope) -> UserScope:
    """The scope editor's fields as a scope (what the form does not edit is kept)."""

    def many(name: str) -> list[str]:
        return [str(v) for v in form.getlist(name)]

    def one(name: str) -> str:
        return str(form.get(name) or "")

    limited = one("device_access") == "limited"
    windows = []
    for index in range(100):
        days = many(f"window_{index}_days")
        start, end = one(f"window_{index}_start"), one(f"window_{index}_end")
        if not days and f"window_{index}_start" not in form:
            break
        if days:  # an end at midnight (or none) is the end of the day
            end = "24:00" if end in {"", "00:00"} else end
            windows.append({"days": days, "start": start or "00:00", "end": end})
    allow = _lines(one("command_allow"))
    raw: dict[str, Any] = {
        "groups": _ids(many("groups")) if limited else None,
        "devices": _ids([*many("devices"), *_lines(one("device_ids"))]) if limited else None,
        "deny_groups": _ids(many("deny_groups")),
        "deny_devices": previous.deny_devices,
        "deny_permissions": previous.deny_permissions,
        "command_types": many("command_types") if one("limit_command_types") else None,
        "command_allow": allow or None,
        "command_deny": _lines(one("command_deny")),
        "time_windows": windows or None,
        "approval_required": bool(one("approval_required")),
    }
    try:
        return UserScope.model_validate(raw)
    except ValidationError:
        raise InvalidInput("the scope is not valid", code="invalid_scope") from None


@router.post(f"{URL}/{{user_id}}")
async def save_user(
    user_id: uuid.UUID,
    page: Manager,
    session: SessionDep,
    runtime: RuntimeDep,
    full_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    active: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    user = await service.get_user(session, user_id)  # another tenant's user, or none: 404
    form = {"full_name": full_name, "role": role, "active": bool(active)}
    scope = None
    try:
        if role not in Role.__members__.values():
            raise InvalidInput("not a role", code="invalid_role")
        scope = scope_from_form(await page.request.form(), parse_scope(user.scope))
        changes = {
            "full_name": full_name.strip(),
            "role": role,
            "is_active": bool(active),
            "scope": scope.model_dump(mode="json"),
        }
        await actions.update_user(session, page_auditor(page, runtime), page.me, user, changes)
    except (Conflict, InvalidInput) as exc:  # refused before anything was changed
        return await _edit(
            page,
            session,
            user,
            error=_error(page, exc),
            status=exc.status_code,
            scope=scope,
            form=form,
        )
    return RedirectResponse(f"{URL}/{user_id}?done=saved", status_code=303)


@router.post(f"{URL}/{{user_id}}/reset-mfa")
async def reset_mfa(
    user_id: uuid.UUID, page: Manager, session: SessionDep, runtime: RuntimeDep
) -> Response:
    user = await service.get_user(session, user_id)
    await actions.reset_mfa(session, page_auditor(page, runtime), user)
    return RedirectResponse(f"{URL}/{user_id}?done=mfa_reset", status_code=303)


@router.post(f"{URL}/{{user_id}}/invite")
async def reinvite(
    user_id: uuid.UUID, page: Manager, session: SessionDep, runtime: RuntimeDep
) -> Response:
    """A new one-time sign-up link, shown once on the page."""
    user = await service.get_user(session, user_id)
    try:
        secret = await actions.reinvite(session, page_auditor(page, runtime), user)
    except Conflict as exc:
        return await _edit(page, session, user, error=_error(page, exc), status=409)
    return await _edit(page, session, user, done="invited", invite=secret)


@router.post(f"{URL}/{{user_id}}/revoke-sessions")
async def revoke_sessions(
    user_id: uuid.UUID, page: Manager, session: SessionDep, runtime: RuntimeDep
) -> Response:
    user = await service.get_user(session, user_id)
    await actions.sign_user_out(session, page_auditor(page, runtime), user)
    return RedirectResponse(f"{URL}/{user_id}?done=signed_out", status_code=303)
