"""The tenant's terminal policy (for holders of `tenant.manage`): shell, account, time limits,
recording and step-up. Saved through the same service as `PUT /api/v1/tenant/terminal-policy`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.terminal.policy import change_policy, get_policy, policy_updated_at
from steward.server.terminal.schemas import TerminalPolicyPublic, TerminalPolicyUpdate
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page
from steward.server.web.units import MINUTE, failed_field, from_form, in_units

Admin = Annotated[Page, require_page(P.TENANT_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/settings/terminal"
# The form shows the time limits in minutes: form field -> policy field (seconds).
IN_MINUTES = {"idle_timeout_min": "idle_timeout_s", "max_duration_min": "max_duration_s"}
# Form field -> what to tell the user when its value is refused.
FIELD_ERRORS = {
    "shell": N_(
        "Enter an absolute path or a program name on the agent's PATH "
        "(up to 255 characters), or leave it empty."
    ),
    "run_as": N_(
        "Enter an account name (letters, digits, _ . -, up to 64 characters), or leave it empty."
    ),
    "idle_timeout_min": N_("Enter a number of minutes from 1 to 1440."),
    "max_duration_min": N_("Enter a number of minutes from 1 to 10080."),
    "recording_failure_policy": N_("Pick what happens when a session cannot be recorded."),
}
INVALID = N_("Some of the values sent are not valid.")


def _values(policy: TerminalPolicyPublic) -> dict[str, Any]:
    values: dict[str, Any] = policy.model_dump(mode="json")
    for form_field, seconds in IN_MINUTES.items():
        values[form_field] = in_units(values.pop(seconds), MINUTE)
    return values


async def _form(
    page: Page,
    session: AsyncSession,
    values: dict[str, Any],
    *,
    saved: bool = False,
    error: str | None = None,
    error_field: str = "",
    status: int = 200,
) -> Response:
    return page.render(
        "settings/terminal.html",
        status_code=status,
        values=values,
        saved=saved,
        error=error,
        error_field=error_field,
        updated_at=await policy_updated_at(session),
    )


@router.get(URL)
async def terminal_settings(
    page: Admin, session: SessionDep, saved: Annotated[str, Query(max_length=8)] = ""
) -> Response:
    return await _form(page, session, _values(await get_policy(session)), saved=saved == "1")


@router.post(URL)
async def save_terminal_settings(
    page: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    shell: Annotated[str, Form(max_length=1000)] = "",
    run_as: Annotated[str, Form(max_length=1000)] = "",
    idle_timeout_min: Annotated[str, Form(max_length=20)] = "",
    max_duration_min: Annotated[str, Form(max_length=20)] = "",
    record_input: Annotated[str, Form(max_length=8)] = "",
    recording_failure_policy: Annotated[str, Form(max_length=32)] = "",
    require_step_up: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    values: dict[str, Any] = {
        "shell": shell,
        "run_as": run_as.strip(),
        "idle_timeout_min": idle_timeout_min.strip(),
        "max_duration_min": max_duration_min.strip(),
        "record_input": bool(record_input),
        "recording_failure_policy": recording_failure_policy,
        "require_step_up": bool(require_step_up),
    }
    try:
        update = TerminalPolicyUpdate.model_validate(from_form(values, IN_MINUTES, MINUTE))
    except ValidationError as exc:
        field = failed_field(exc, IN_MINUTES)
        message = page.gettext(FIELD_ERRORS.get(field, INVALID))
        return await _form(page, session, values, error=message, error_field=field, status=422)
    await change_policy(session, page_auditor(page, runtime), update, page.me.actor_name)
    return RedirectResponse(f"{URL}?saved=1", status_code=303)
