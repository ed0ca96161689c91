"""The composer (`/run`): a command of any type, its targets and rate control, checked as it is
typed (how many devices, how risky, whether it waits for approval or is refused), then run as a
job or kept as a schedule.

Payload fields are named `p_<field>` (as in protocol/payloads.py), script parameters
`param_<name>`; the same form is read for the live preview and for the submission.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from steward.protocol import CommandType
from steward.server.accounts.permissions import Permission as P
from steward.server.commands import service as commands
from steward.server.commands.schemas import CommandCreate, first_error
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from steward.server.jobs import schedules, targets
from steward.server.jobs.schemas import JobCreate, JobSpec, JobStatus, ScheduleCreate
from steward.server.jobs.service import create_job
from steward.server.scripts import service as scripts
from steward.server.tenancy.groups import list_groups
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Runner = Annotated[Page, require_page(P.COMMAND_RUN)]
router = APIRouter(route_class=PageRoute, include_in_schema=False)

T = CommandType
PACKAGE_TYPES = {T.PACKAGE_INSTALL, T.PACKAGE_UNINSTALL, T.PACKAGE_UPGRADE}
POWER_TYPES = {T.POWER_REBOOT, T.POWER_SHUTDOWN, T.POWER_LOGOFF}
SERVICE_TYPES = {T.SERVICE_START, T.SERVICE_STOP, T.SERVICE_RESTART, T.SERVICE_STATUS}
TYPE_LABELS = {
    T.SHELL: N_("Shell command"),
    T.SCRIPT: N_("Script from the library"),
    T.PACKAGE_INSTALL: N_("Install packages"),
    T.PACKAGE_UNINSTALL: N_("Uninstall packages"),
    T.PACKAGE_UPGRADE: N_("Upgrade packages"),
    T.PACKAGE_LIST: N_("List packages"),
    T.POWER_REBOOT: N_("Restart"),
    T.POWER_SHUTDOWN: N_("Shut down"),
    T.POWER_LOGOFF: N_("Sign users out"),
    T.MESSAGE: N_("Show a message"),
    T.LOCALE_SET: N_("Set the language"),
    T.SERVICE_START: N_("Start a service"),
    T.SERVICE_STOP: N_("Stop a service"),
    T.SERVICE_RESTART: N_("Restart a service"),
    T.SERVICE_STATUS: N_("Service status"),
    T.PROCESS_LIST: N_("List processes"),
    T.PROCESS_KILL: N_("End a process"),
}
INTERPRETERS = ("sh", "bash", "cmd", "powershell")
MANAGERS = ("auto", "apt", "dnf", "yum", "zypper", "brew", "choco", "winget")
WHEN = ("now", "at", "schedule")
MAX_DEVICES_LISTED = 1000
NO_TARGET = N_("Choose devices, groups, tags or all devices.")
BAD_VALUES = N_("Check the values: %(details)s")


@dataclass
class Composed:
    """The composer's form as typed, and what it means (or why it does not parse)."""

    values: dict[str, str]
    type: CommandType
    devices: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    when: str = "now"
    target: targets.Target | None = None
    target_error: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    payload_error: str = ""


def _type(value: str | None) -> CommandType:
    try:
        return CommandType(value or T.SHELL)
    except ValueError:
        return T.SHELL


def _words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]


def _payload(kind: CommandType, text: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
    """The payload as the API takes it; empty optional fields are left out (defaults apply)."""

    def flag(name: str) -> bool:
        return text.get(f"p_{name}") == "1"

    def get(name: str) -> str:
        return text.get(f"p_{name}", "").strip()

    found: dict[str, Any]
    if kind is T.SHELL:
        found = {"command": text.get("p_command", ""), "interpreter": get("interpreter")}
    elif kind is T.SCRIPT:
        found = {"script_id": get("script_id"), "params": {k: v for k, v in params.items() if v}}
    elif kind in PACKAGE_TYPES:
        found = {"names": _words(get("names")), "version": get("version"),
                 "manager": get("manager"), "dry_run": flag("dry_run")}  # fmt: skip
    elif kind is T.PACKAGE_LIST:
        found = {"manager": get("manager"), "filter": get("filter")}
    elif kind in POWER_TYPES:
        found = {"delay_s": get("delay_s"), "message": get("message"), "force": flag("force"),
                 "dry_run": flag("dry_run")}  # fmt: skip
    elif kind is T.MESSAGE:
        found = {"title": get("title"), "text": text.get("p_text", "")}
    elif kind is T.LOCALE_SET:
        found = {"locale": get("locale"), "user": get("user"), "dry_run": flag("dry_run")}
    elif kind in SERVICE_TYPES:
        found = {"name": get("name")}
    elif kind is T.PROCESS_LIST:
        found = {"filter": get("filter")}
    else:  # process.kill
        found = {"pid": get("pid"), "name": get("name"), "tree": flag("tree"),
                 "force": flag("force")}  # fmt: skip
    return {key: value for key, value in found.items() if value != ""}


def read_form(page: Page, form: FormData) -> Composed:
    values = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    params = {
        key.removeprefix("param_"): value
        for key, value in values.items()
        if key.startswith("param_")
    }
    kind = _type(values.get("type"))
    composed = Composed(
        values=values,
        type=kind,
        devices=[str(v) for v in form.getlist("devices") if v],
        groups=[str(v) for v in form.getlist("groups") if v],
        params=params,
        when=values["when"] if values.get("when") in WHEN else "now",
    )
    try:
        composed.target = targets.Target(
            devices=composed.devices,  # type: ignore[arg-type]  # validated
            groups=composed.groups,
            tags=_words(values.get("tags", "")),
            all=values.get("all") == "1",
        )
    except ValidationError as exc:
        nothing = not (composed.devices or composed.groups or values.get("tags", "").strip())
        composed.target_error = (
            page.gettext(NO_TARGET)
            if nothing and values.get("all") != "1"
            else page.gettext(BAD_VALUES, details=first_error(exc))
        )
    try:
        request = CommandCreate(type=kind, payload=_payload(kind, values, params))
        composed.payload = request.payload
    except ValidationError as exc:
        composed.payload_error = page.gettext(BAD_VALUES, details=first_error(exc))
    return composed


def _run_at(page: Page, text: str) -> datetime | None:
    """A `datetime-local` value, meant in the tenant's time zone."""
    if not text:
        return None
    local = datetime.fromisoformat(text)
    if local.tzinfo is None:
        local = local.replace(tzinfo=page.tz)
    return local.astimezone(UTC)


def _spec(page: Page, composed: Composed) -> dict[str, Any]:
    v = composed.values
    spec: dict[str, Any] = {
        "name": v.get("job_name", "").strip(),
        "type": composed.type,
        "payload": _payload(composed.type, v, composed.params),
        "target": composed.target.model_dump(mode="json") if composed.target else {},
        "max_concurrency": v.get("max_concurrency", "").strip() or "100%",
        "error_threshold": v.get("error_threshold", "").strip() or None,
        "timeout_s": v.get("timeout_s", "").strip() or None,
    }
    return spec


# ---- the page and its live parts -------------------------------------------------------------


async def _choices(page: Page, session: AsyncSession) -> dict[str, Any]:
    """What the pickers offer: devices in reach, groups, tags, scripts."""
    devices = await targets.resolve(session, page.me, targets.Target(all=True))
    groups = await list_groups(session, page.me.tenant_id)
    return {
        "all_devices": devices[:MAX_DEVICES_LISTED],
        "group_names": [summary.group.name for summary in groups],
        "known_tags": await targets.all_tags(session),
        "scripts": await scripts.list_scripts(session, page.me),
    }


async def _script_parameters(
    page: Page, session: AsyncSession, script_id: str
) -> tuple[list[Any], str]:
    """The parameters of a script's latest version, or why there are none to show."""
    if not script_id:
        return [], ""
    try:
        _, version = await scripts.get_version(session, page.me, uuid.UUID(script_id))
    except (ValueError, NotFound):
        return [], page.gettext("This script does not exist.")
    return scripts.parameters_of(version), ""


async def render_composer(
    page: Page, session: AsyncSession, composed: Composed, *, error: str = "", status: int = 200
) -> Response:
    parameters, script_error = await _script_parameters(
        page, session, composed.values.get("p_script_id", "")
    )
    return page.render(
        "jobs/composer.html",
        status_code=status,
        c=composed,
        v=composed.values,
        types=[(t.value, page.gettext(label)) for t, label in TYPE_LABELS.items()],
        interpreters=INTERPRETERS,
        managers=MANAGERS,
        parameters=parameters,
        script_error=script_error,
        error=error,
        **await _choices(page, session),
    )


@router.get("/run")
async def composer(
    page: Runner,
    session: SessionDep,
    device: Annotated[uuid.UUID | None, Query()] = None,
    type: Annotated[str, Query(max_length=32)] = "shell",
    when: Annotated[str, Query(max_length=16)] = "now",
) -> Response:
    """The composer, empty; `?device=` preselects a device, `?type=` a command type."""
    values = {"type": _type(type).value, "when": when if when in WHEN else "now",
              "max_concurrency": "100%"}  # fmt: skip
    composed = Composed(values=values, type=_type(type), when=values["when"])
    if device is not None:
        composed.devices = [str(device)]
    return await render_composer(page, session, composed)


@router.post("/run/fields")
async def composer_fields(page: Runner, session: SessionDep) -> Response:
    """The parameter fields of the chosen type (and script), keeping what was typed."""
    composed = read_form(page, await page.request.form())
    parameters, script_error = await _script_parameters(
        page, session, composed.values.get("p_script_id", "")
    )
    return page.render(
        "jobs/_fields.html",
        headers={"HX-Trigger-After-Settle": "composer-fields"},  # the preview follows
        c=composed,
        v=composed.values,
        interpreters=INTERPRETERS,
        managers=MANAGERS,
        parameters=parameters,
        script_error=script_error,
        scripts=await scripts.list_scripts(session, page.me),
    )


@router.post("/run/preview")
async def composer_preview(page: Runner, session: SessionDep) -> Response:
    """How many devices the target matches, and the verdict on the command (the assess logic
    of the API, for the first device of the target)."""
    composed = read_form(page, await page.request.form())
    preview = None
    if composed.target is not None:
        preview = await targets.preview(session, page.me, composed.target)
    verdict, refused, problem = None, "", composed.payload_error
    if not problem:
        first = preview.sample[0]["id"] if preview and preview.sample else None
        request = CommandCreate(type=composed.type, payload=composed.payload)
        try:
            device_id = uuid.UUID(str(first)) if first else None
            verdict, refused = await commands.preview(session, page.me, request, device_id)
        except InvalidInput as exc:
            problem = page.gettext(BAD_VALUES, details=exc.message)
    return page.render(
        "jobs/_preview.html",
        c=composed,
        preview=preview,
        verdict=verdict,
        refused=refused,
        problem=problem,
    )


@router.post("/run")
async def submit(page: Runner, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Run the command as a job (even for one device), or keep it as a schedule."""
    composed = read_form(page, await page.request.form())
    problem = composed.target_error or composed.payload_error
    if problem:
        return await render_composer(page, session, composed, error=problem, status=422)
    auditor = page_auditor(page, runtime)
    try:
        spec = _spec(page, composed)
        if composed.when == "schedule":
            request = ScheduleCreate(
                name=composed.values.get("job_name", "").strip()
                or f"{composed.type}: {composed.values.get('cron', '')}"[:200],
                cron=composed.values.get("cron", ""),
                job=JobSpec.model_validate(spec),
            )
            schedule = await schedules.create_schedule(session, page.me, request)
            await session.commit()
            detail = {"cron": schedule.cron, "template": schedule.template}
            await auditor(
                "schedule.create", target=f"schedule:{schedule.id}", risk="medium", detail=detail
            )
            return RedirectResponse("/schedules?done=created", status_code=303)
        run_at = _run_at(page, composed.values.get("run_at", "")) if composed.when == "at" else None
        job_request = JobCreate.model_validate(spec | {"run_at": run_at})
    except ValidationError as exc:
        message = page.gettext(BAD_VALUES, details=first_error(exc))
        return await render_composer(page, session, composed, error=message, status=422)
    except ValueError as exc:  # a date that does not parse
        message = page.gettext(BAD_VALUES, details=str(exc))
        return await render_composer(page, session, composed, error=message, status=422)
    except (InvalidInput, Conflict, NotFound) as exc:
        await session.rollback()
        message = page.gettext(BAD_VALUES, details=exc.message)
        return await render_composer(page, session, composed, error=message, status=422)
    return await _create(page, session, runtime, composed, job_request)


async def _create(
    page: Page, session: AsyncSession, runtime: RuntimeDep, composed: Composed, request: JobCreate
) -> Response:
    """As POST /api/v1/jobs: created, audited, started (or refused, and that audited too)."""
    auditor = page_auditor(page, runtime)
    try:
        created = await create_job(session, page.me, request, runtime.settings.command_timeout_s)
    except PermissionDenied as exc:
        await session.rollback()
        await auditor("job.blocked", "blocked", risk="medium",
                      detail={"type": str(request.type), "reason": exc.code,
                              "message": exc.message})  # fmt: skip
        if exc.code == "forbidden":
            raise
        message = page.gettext("Refused: %(reason)s", reason=exc.message)
        return await render_composer(page, session, composed, error=message, status=403)
    except (InvalidInput, Conflict, NotFound) as exc:
        await session.rollback()
        message = page.gettext(BAD_VALUES, details=exc.message)
        return await render_composer(page, session, composed, error=message, status=422)
    job = created.job
    await session.commit()  # every command is stored before any is dispatched
    await auditor(
        "job.submitted",
        target=f"job:{job.id}",
        risk="medium",
        detail={"type": job.type, "payload": job.payload, "target": job.target,
                "total": job.total, "excluded": len(created.excluded), "status": job.status,
                "risk": job.risk},
    )  # fmt: skip
    if job.status == JobStatus.RUNNING:
        await runtime.jobs.advance(job.id, follow=False)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
