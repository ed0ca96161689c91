"""The tenant's command policy (for holders of `tenant.manage`): the rules, a form to add, edit
or delete one, and a box to try a command against them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import CommandType
from steward.server.accounts.models import Role
from steward.server.accounts.permissions import Permission as P
from steward.server.commands.policy import (
    CommandPolicy,
    Effect,
    PolicyDecision,
    Rule,
    command_policy,
    evaluate,
    save_command_policy,
    split_lines,
    split_words,
    with_rule,
    without_rule,
)
from steward.server.deps import RuntimeDep, SessionDep
from steward.server.errors import NotFound
from steward.server.tenancy.models import Group, Tenant
from steward.server.web.account import page_auditor
from steward.server.web.i18n import N_
from steward.server.web.page import Page, PageRoute, require_page

Admin = Annotated[Page, require_page(P.TENANT_MANAGE)]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

URL = "/settings/command-policy"
# Field -> what to tell the user when its value is refused.
FIELD_ERRORS = {
    "id": N_("Use 1 to 40 lower-case letters, digits, - or _, starting with a letter or digit."),
    "description": N_("Keep the description under 300 characters."),
    "effect": N_("Pick an effect from the list."),
    "types": N_("Enter command types such as shell, package.* or *, separated by spaces."),
    "commands": N_(
        "Enter one command pattern per line, e.g. systemctl restart * (close every quote)."
    ),
    "groups": N_("Enter one group name per line."),
    "roles": N_("Pick roles from the list."),
    "": N_("Command patterns apply to shell commands only: add shell to the types."),
}
DUPLICATE = N_("A rule with this id already exists.")
TOO_MANY = N_("Some of the values sent are not valid.")
EMPTY_RULE: dict[str, Any] = {
    "original_id": "",
    "id": "",
    "description": "",
    "effect": Effect.DENY.value,
    "types": "shell",
    "commands": "",
    "groups": "",
    "roles": [],
    "enabled": True,
}


async def _tenant(page: Page, session: AsyncSession) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.id == page.me.tenant_id))
    assert tenant is not None  # the signed-in user's own tenant
    return tenant


def _values(rule: Rule) -> dict[str, Any]:
    return {
        "original_id": rule.id,
        "id": rule.id,
        "description": rule.description,
        "effect": rule.effect.value,
        "types": " ".join(rule.types),
        "commands": "\n".join(rule.commands),
        "groups": "\n".join(rule.groups),
        "roles": [r.value for r in rule.roles],
        "enabled": rule.enabled,
    }


async def _render(
    page: Page,
    session: AsyncSession,
    policy: CommandPolicy,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    error_field: str = "",
    trial: dict[str, Any] | None = None,
    notice: str = "",
    status: int = 200,
) -> Response:
    groups = list(await session.scalars(select(Group.name).order_by(Group.name)))
    return page.render(
        "command_policy.html",
        status_code=status,
        policy=policy,
        values=values or dict(EMPTY_RULE),
        error=error,
        error_field=error_field,
        trial=trial or {"type": "shell", "command": "", "role": page.me.role.value, "group": ""},
        notice=notice,
        roles=list(Role),
        effects=list(Effect),
        command_types=[t.value for t in CommandType],
        groups=groups,
    )


@router.get(URL)
async def policy_page(
    page: Admin,
    session: SessionDep,
    edit: Annotated[str, Query(max_length=40)] = "",
    done: Annotated[str, Query(max_length=8)] = "",
) -> Response:
    policy = command_policy((await _tenant(page, session)).settings)
    values = None
    if edit:
        rule = policy.rule(edit)
        if rule is None:
            raise NotFound("no such rule", code="rule_not_found")
        values = _values(rule)
    return await _render(page, session, policy, values=values, notice=done)


@router.post(f"{URL}/rules")
async def save_rule(
    page: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    rule_id: Annotated[str, Form(alias="id", max_length=100)] = "",
    original_id: Annotated[str, Form(max_length=100)] = "",
    description: Annotated[str, Form(max_length=1000)] = "",
    effect: Annotated[str, Form(max_length=32)] = "",
    types: Annotated[str, Form(max_length=2000)] = "",
    commands: Annotated[str, Form(max_length=40_000)] = "",
    groups: Annotated[str, Form(max_length=20_000)] = "",
    roles: Annotated[list[str] | None, Form(max_length=len(Role))] = None,
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Add a rule, or replace rule `original_id` with it (its place in the order is kept)."""
    values: dict[str, Any] = {
        "original_id": original_id.strip(),
        "id": rule_id.strip(),
        "description": description.strip(),
        "effect": effect,
        "types": types,
        "commands": commands,
        "groups": groups,
        "roles": list(roles or []),
        "enabled": bool(enabled),
    }
    tenant = await _tenant(page, session)
    policy = command_policy(tenant.settings)
    replacing = values["original_id"] or None
    if replacing is not None and policy.rule(replacing) is None:
        raise NotFound("no such rule", code="rule_not_found")

    if values["id"] != replacing and policy.rule(values["id"]) is not None:
        return await _refused(page, session, policy, values, DUPLICATE, "id")
    try:
        rule = Rule.model_validate(
            {
                **{k: v for k, v in values.items() if k != "original_id"},
                "types": split_words(types),
                "commands": split_lines(commands),
                "groups": split_lines(groups),
            }
        )
        updated = with_rule(policy, rule, replacing)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        field = str(loc[0]) if loc else ""
        message = FIELD_ERRORS.get(field, TOO_MANY)
        return await _refused(page, session, policy, values, message, field)
    await save_command_policy(session, page_auditor(page, runtime), tenant, updated)
    return RedirectResponse(f"{URL}?done=saved", status_code=303)


async def _refused(
    page: Page,
    session: AsyncSession,
    policy: CommandPolicy,
    values: dict[str, Any],
    message: str,
    field: str,
) -> Response:
    return await _render(
        page,
        session,
        policy,
        values=values,
        error=page.gettext(message),
        error_field=field,
        status=422,
    )


@router.post(f"{URL}/delete")
async def delete_rule(
    page: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
    rule_id: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Delete a rule; one that is not there (deleted in another tab) changes nothing."""
    tenant = await _tenant(page, session)
    policy = command_policy(tenant.settings)
    if policy.rule(rule_id) is not None:
        await save_command_policy(
            session, page_auditor(page, runtime), tenant, without_rule(policy, rule_id)
        )
    return RedirectResponse(f"{URL}?done=deleted", status_code=303)


@router.post(f"{URL}/try")
async def try_command(
    page: Admin,
    session: SessionDep,
    command_type: Annotated[str, Form(alias="type", max_length=40)] = "shell",
    command: Annotated[str, Form(max_length=64 * 1024)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    group: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """What the rules say of a command for a role on a group's devices; nothing is run."""
    policy = command_policy((await _tenant(page, session)).settings)
    trial: dict[str, Any] = {
        "type": command_type,
        "command": command,
        "role": role,
        "group": group,
    }
    if command_type not in {t.value for t in CommandType} or role not in {r.value for r in Role}:
        trial["error"] = page.gettext(TOO_MANY)
        return await _render(page, session, policy, trial=trial, status=422)
    found = None
    if group:
        found = await session.scalar(select(Group).where(Group.name == group))
    decision = evaluate(
        policy,
        role=role,
        group_id=found.id if found else None,
        group_name=found.name if found else None,
        command_type=command_type,
        payload={"command": command} if command_type == CommandType.SHELL else {},
    )
    trial.update(_verdict(page, decision))
    return await _render(page, session, policy, trial=trial)


def _verdict(page: Page, decision: PolicyDecision) -> dict[str, str]:
    if decision.blocked_by is not None:
        outcome = "blocked"
        text = page.gettext(N_("Blocked by rule %(rule)s."), rule=decision.blocked_by.id)
    elif decision.blocked:
        outcome, text = "blocked", page.gettext(N_("Blocked: no allow rule lets it through."))
    elif decision.needs_approval and decision.approval_by is not None:
        outcome = "approval"
        text = page.gettext(
            N_("Allowed after approval (rule %(rule)s)."), rule=decision.approval_by.id
        )
    else:
        outcome, text = "allowed", page.gettext(N_("Allowed."))
    return {"outcome": outcome, "verdict": text, "reason": decision.reason}
