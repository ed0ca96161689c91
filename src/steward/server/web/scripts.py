"""The script library's pages: the list with a create form, and the editor of one script
(text, interpreter, parameter rows, version history, save as a new version, archive).

Reading needs `command.run`, changing `device.manage` (as the API). Parameter rows are added
and removed by submitting the form (no script of our own in the page): the values typed so far
come back in the re-rendered form.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import Conflict, InvalidInput, NotFound
from steward.server.scripts import actions, service
from steward.server.scripts.params import ParamType, PassAs
from steward.server.scripts.schemas import ScriptCreate, ScriptUpdate, ScriptVersionCreate
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Reader = Annotated[Page, require_page(P.COMMAND_RUN)]
Writer = Annotated[Page, require_page(P.DEVICE_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/scripts"
INTERPRETERS = ("sh", "bash", "cmd", "powershell", "python")
MAX_ROWS = 64
FIELDS = ("name", "label", "type", "default", "choices", "pattern", "max_length", "pass_as")
ERRORS = {
    "script_exists": N_("A script with this name already exists."),
    "script_archived": N_("This script is archived: restore it before saving a new version."),
    "script_conflict": N_("The script was changed at the same time; try again."),
}
DONE = {
    "created": N_("The script was created."),
    "saved": N_("A new version was saved."),
    "updated": N_("The changes were saved."),
    "archived": N_("The script was archived."),
    "restored": N_("The script was restored."),
}
INVALID = N_("Some of the values are not valid: %(details)s")


@dataclass
class ScriptForm:
    """What the editor shows: the values typed (or saved), and the parameter rows."""

    name: str = ""
    description: str = ""
    interpreter: str = "sh"
    body: str = ""
    note: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)


def _row(spec: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = spec or {}
    default = spec.get("default")
    if isinstance(default, bool):
        default = "true" if default else "false"
    return {
        "name": spec.get("name", ""),
        "label": spec.get("label", ""),
        "type": spec.get("type", ParamType.STRING.value),
        "required": bool(spec.get("required", False)),
        "default": "" if default is None else str(default),
        "choices": ", ".join(spec.get("choices") or []),
        "pattern": spec.get("pattern") or "",
        "max_length": "" if spec.get("max_length") is None else str(spec["max_length"]),
        "pass_as": spec.get("pass_as", PassAs.ENV.value),
    }


def _form_values(form: FormData) -> ScriptForm:
    def one(name: str) -> str:
        return str(form.get(name) or "")

    rows = []
    for index in range(MAX_ROWS):
        if f"param_{index}_name" not in form:
            break
        row: dict[str, Any] = {name: one(f"param_{index}_{name}").strip() for name in FIELDS}
        row["required"] = one(f"param_{index}_required") == "1"
        rows.append(row)
    interpreter = one("interpreter")
    body = one("body")
    if interpreter not in ("cmd", "powershell"):
        body = body.replace("\r\n", "\n")  # browsers send CRLF; sh and python want LF
    return ScriptForm(
        name=one("name"),
        description=one("description"),
        interpreter=interpreter,
        body=body,
        note=one("note"),
        rows=rows,
    )


def _parameters(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as parameter declarations (blank rows are skipped); validated by the schema."""
    found = []
    for row in rows:
        if not row["name"]:
            continue
        spec: dict[str, Any] = {
            "name": row["name"],
            "label": row["label"],
            "type": row["type"],
            "required": row["required"],
            "pass_as": row["pass_as"],
        }
        if row["default"]:
            spec["default"] = row["default"]
        if row["choices"]:
            spec["choices"] = [c.strip() for c in row["choices"].split(",") if c.strip()]
        if row["pattern"]:
            spec["pattern"] = row["pattern"]
        if row["max_length"]:
            spec["max_length"] = row["max_length"]
        found.append(spec)
    return found


def _row_action(form: FormData, values: ScriptForm) -> bool:
    """Apply an add/remove row button; True when the form is to be shown again, not saved."""
    action = str(form.get("action") or "")
    if action == "add_param" and len(values.rows) < MAX_ROWS:
        values.rows.append(_row())
        return True
    if action.startswith("remove_param:"):
        index = action.removeprefix("remove_param:")
        if index.isdigit() and int(index) < len(values.rows):
            del values.rows[int(index)]
        return True
    return False


def _invalid(page: Page, exc: ValidationError) -> str:
    details = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
    return page.gettext(INVALID, details=details)


def _refused(page: Page, exc: Conflict | InvalidInput | NotFound) -> str:
    if exc.code in ERRORS:
        return page.gettext(ERRORS[exc.code])
    return page.gettext(INVALID, details=exc.message)


# ---- list and create -------------------------------------------------------------------------


async def _list(
    page: Page,
    session: AsyncSession,
    *,
    archived: bool = False,
    done: str = "",
    error: str | None = None,
    status: int = 200,
    values: ScriptForm | None = None,
) -> Response:
    scripts = await service.list_scripts(session, page.me, include_archived=archived)
    return page.render(
        "scripts/list.html",
        status_code=status,
        scripts=scripts,
        archived=archived,
        interpreters=INTERPRETERS,
        param_types=[t.value for t in ParamType],
        pass_as=[p.value for p in PassAs],
        done=page.gettext(DONE[done]) if done in DONE else None,
        error=error,
        values=values or ScriptForm(),
    )


@router.get(URL)
async def script_list(
    page: Reader,
    session: SessionDep,
    archived: Annotated[bool, Query()] = False,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    return await _list(page, session, archived=archived, done=done)


@router.post(URL)
async def create_script(page: Writer, session: SessionDep, runtime: RuntimeDep) -> Response:
    form = await page.request.form()
    values = _form_values(form)
    if _row_action(form, values):
        return await _list(page, session, values=values)
    try:
        request = ScriptCreate(
            name=values.name,
            description=values.description,
            interpreter=values.interpreter,  # type: ignore[arg-type]  # validated
            body=values.body,
            parameters=_parameters(values.rows),  # type: ignore[arg-type]  # validated
            note=values.note,
        )
        script, _ = await actions.create(session, page_auditor(page, runtime), page.me, request)
    except ValidationError as exc:
        return await _list(page, session, error=_invalid(page, exc), status=422, values=values)
    except (Conflict, InvalidInput) as exc:
        await session.rollback()
        message = _refused(page, exc)
        return await _list(page, session, error=message, status=exc.status_code, values=values)
    return RedirectResponse(f"{URL}/{script.id}?done=created", status_code=303)


# ---- one script ------------------------------------------------------------------------------


async def _editor(
    page: Page,
    session: AsyncSession,
    script_id: uuid.UUID,
    *,
    version: int | None = None,
    done: str = "",
    error: str | None = None,
    status: int = 200,
    values: ScriptForm | None = None,
) -> Response:
    script, shown = await service.get_version(session, page.me, script_id, version)
    if values is None:
        values = ScriptForm(
            name=script.name,
            description=script.description,
            interpreter=shown.interpreter,
            body=shown.body,
            rows=[_row(p) for p in shown.parameters],
        )
    return page.render(
        "scripts/edit.html",
        status_code=status,
        script=script,
        shown=shown,
        versions=await service.versions_of(session, script),
        interpreters=INTERPRETERS,
        param_types=[t.value for t in ParamType],
        pass_as=[p.value for p in PassAs],
        done=page.gettext(DONE[done]) if done in DONE else None,
        error=error,
        values=values,
    )


@router.get(f"{URL}/{{script_id}}")
async def script_detail(
    script_id: uuid.UUID,
    page: Reader,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    done: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    return await _editor(page, session, script_id, version=version, done=done)


@router.post(f"{URL}/{{script_id}}/versions")
async def save_version(
    script_id: uuid.UUID, page: Writer, session: SessionDep, runtime: RuntimeDep
) -> Response:
    form = await page.request.form()
    values = _form_values(form)
    if _row_action(form, values):
        return await _editor(page, session, script_id, values=values)
    try:
        request = ScriptVersionCreate(
            body=values.body,
            interpreter=values.interpreter,  # type: ignore[arg-type]  # validated
            parameters=_parameters(values.rows),  # type: ignore[arg-type]  # validated
            note=values.note,
        )
        await actions.add_version(session, page_auditor(page, runtime), page.me, script_id, request)
    except ValidationError as exc:
        message = _invalid(page, exc)
        return await _editor(page, session, script_id, error=message, status=422, values=values)
    except (Conflict, InvalidInput) as exc:
        await session.rollback()
        message = _refused(page, exc)
        return await _editor(
            page, session, script_id, error=message, status=exc.status_code, values=values
        )
    return RedirectResponse(f"{URL}/{script_id}?done=saved", status_code=303)


@router.post(f"{URL}/{{script_id}}")
async def update_script(
    script_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    name: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Rename or describe the script (no new version)."""
    return await _update(
        page, session, runtime, script_id, {"name": name, "description": description}
    )


@router.post(f"{URL}/{{script_id}}/archive")
async def archive_script(
    script_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    archived: Annotated[str, Form(max_length=1)] = "1",
) -> Response:
    """Archive (`archived=1`) or restore (`archived=0`) the script."""
    return await _update(page, session, runtime, script_id, {"archived": archived == "1"})


async def _update(
    page: Page, session: AsyncSession, runtime: RuntimeDep, script_id: uuid.UUID,
    changes: dict[str, Any],
) -> Response:  # fmt: skip
    try:
        request = ScriptUpdate.model_validate(changes)
        await actions.update(session, page_auditor(page, runtime), page.me, script_id, request)
    except ValidationError as exc:
        return await _editor(page, session, script_id, error=_invalid(page, exc), status=422)
    except (Conflict, InvalidInput) as exc:
        await session.rollback()
        message = _refused(page, exc)
        return await _editor(page, session, script_id, error=message, status=exc.status_code)
    done = "updated"
    if "archived" in changes:
        done = "archived" if changes["archived"] else "restored"
    return RedirectResponse(f"{URL}/{script_id}?done={done}", status_code=303)
