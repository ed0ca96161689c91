"""The tenant's file policy (for holders of `tenant.manage`): the directories operators may reach
on Linux and on Windows, size limits and how long backups are kept. Saved through the same
service as `PUT /api/v1/tenant/file-policy`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import InvalidInput
from steward.server.files.policy import (
    Policy,
    change_policy,
    check_root,
    load_policy,
    policy_updated_at,
)
from steward.server.files.schemas import FilePolicyPublic
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page
from steward.server.web.units import MIB, failed_field, from_form, in_units

Admin = Annotated[Page, require_page(P.TENANT_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/settings/files"
ROOTS = {"linux_roots": False, "windows_roots": True}  # form field -> Windows paths?
# The form shows the sizes in MiB: form field -> policy field (bytes).
IN_MIB = {
    "max_upload_mib": "max_upload_bytes",
    "max_editor_mib": "max_editor_bytes",
    "max_backup_mib": "max_backup_bytes",
}
# Form field -> what to tell the user when its value is refused.
FIELD_ERRORS = {
    "linux_roots": N_("Enter at most 32 directories, one per line."),
    "windows_roots": N_("Enter at most 32 directories, one per line."),
    "max_upload_mib": N_("Enter a size in MiB from 0 to 1048576."),
    "max_editor_mib": N_("Enter a size in MiB from 0 to 4."),
    "max_backup_mib": N_("Enter a size in MiB from 0 to 1048576."),
    "backup_keep_versions": N_("Enter a number of versions from 1 to 1000."),
    "backup_keep_days": N_("Enter a number of days from 0 to 3650."),
}
# A root `check_root` refuses: malformed (by Windows or not), or a system directory.
UNSAFE_ROOT = {
    False: N_("%(root)s is not an absolute Linux path such as /srv/data."),
    True: N_("%(root)s is not an absolute Windows path such as C:\\Data."),
}
SYSTEM_ROOT = N_("%(root)s is a system directory: tick “Allow system directories” to use it.")
INVALID = N_("Some of the values sent are not valid.")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _values(policy: Policy) -> dict[str, Any]:
    values: dict[str, Any] = {
        "linux_roots": "\n".join(policy.linux_roots),
        "windows_roots": "\n".join(policy.windows_roots),
        "allow_system_dirs": policy.allow_system_dirs,
        "backup_keep_versions": str(policy.backup_keep_versions),
        "backup_keep_days": str(policy.backup_keep_days),
    }
    for form_field, size in IN_MIB.items():
        values[form_field] = in_units(getattr(policy, size), MIB)
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
        "settings/files.html",
        status_code=status,
        values=values,
        saved=saved,
        error=error,
        error_field=error_field,
        updated_at=await policy_updated_at(session),
    )


@router.get(URL)
async def file_settings(
    page: Admin, session: SessionDep, saved: Annotated[str, Query(max_length=8)] = ""
) -> Response:
    return await _form(page, session, _values(await load_policy(session)), saved=saved == "1")


@router.post(URL)
async def save_file_settings(
    page: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    linux_roots: Annotated[str, Form(max_length=200_000)] = "",
    windows_roots: Annotated[str, Form(max_length=200_000)] = "",
    allow_system_dirs: Annotated[str, Form(max_length=8)] = "",
    max_upload_mib: Annotated[str, Form(max_length=40)] = "",
    max_editor_mib: Annotated[str, Form(max_length=40)] = "",
    max_backup_mib: Annotated[str, Form(max_length=40)] = "",
    backup_keep_versions: Annotated[str, Form(max_length=20)] = "",
    backup_keep_days: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    values: dict[str, Any] = {
        "linux_roots": linux_roots,
        "windows_roots": windows_roots,
        "allow_system_dirs": bool(allow_system_dirs),
        "max_upload_mib": max_upload_mib.strip(),
        "max_editor_mib": max_editor_mib.strip(),
        "max_backup_mib": max_backup_mib.strip(),
        "backup_keep_versions": backup_keep_versions.strip(),
        "backup_keep_days": backup_keep_days.strip(),
    }
    raw = from_form(values, IN_MIB, MIB) | {
        "linux_roots": _lines(linux_roots),
        "windows_roots": _lines(windows_roots),
    }
    try:
        body = FilePolicyPublic.model_validate(raw)
    except ValidationError as exc:
        field = failed_field(exc, IN_MIB)
        message = page.gettext(FIELD_ERRORS.get(field, INVALID))
        return await _form(page, session, values, error=message, error_field=field, status=422)
    for form_field, windows in ROOTS.items():
        for root in getattr(body, form_field):
            try:
                check_root(root, windows=windows, allow_system=body.allow_system_dirs)
            except InvalidInput as exc:
                text = SYSTEM_ROOT if exc.code == "system_directory" else UNSAFE_ROOT[windows]
                message = page.gettext(text, root=root)
                return await _form(
                    page, session, values, error=message, error_field=form_field, status=422
                )
    policy = Policy(**body.model_dump())
    await change_policy(session, page_auditor(page, runtime), policy, page.me.actor)
    return RedirectResponse(f"{URL}?saved=1", status_code=303)
