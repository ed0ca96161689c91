"""`steward user list|reset-mfa|unlock|disable` and `steward command run --as`: operator work
on a tenant's users, and acting as a user through the same authorisation as the API."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from steward.cli._common import fail, run_or_fail
from steward.server.settings import load_settings

user_app = typer.Typer(help="Users of a tenant.", no_args_is_help=True)
command_app = typer.Typer(help="Commands, run as a user of a tenant.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option(help="tenant slug")]
Email = Annotated[str, typer.Option(help="the user's e-mail")]
CLI_ACTOR = "system:cli"


async def _user(session: AsyncSession, tenant: str, email: str) -> Any:
    from sqlalchemy import select

    from steward.server.accounts.models import User
    from steward.server.db.tenant_filter import bind_system
    from steward.server.errors import NotFound
    from steward.server.tenancy.service import get_tenant_by_slug

    bind_system(session)
    found = await get_tenant_by_slug(session, tenant)
    user = await session.scalar(
        select(User).where(User.tenant_id == found.id, User.email == email.strip().lower())
    )
    if user is None:
        raise NotFound(f"no user {email} in {tenant}", code="user_not_found")
    return found, user


async def _audit(tenant_id: uuid.UUID, action: str, target: str, **detail: Any) -> None:
    from steward.server.audit.service import record
    from steward.server.db.engine import create_engine, create_session_factory

    engine = create_engine(load_settings().effective_database_url)
    try:
        await record(
            create_session_factory(engine, system=True),
            tenant_id=tenant_id,
            actor=CLI_ACTOR,
            action=action,
            result="success",
            target=target,
            risk="high",
            detail=detail,
        )
    finally:
        await engine.dispose()


@user_app.command("list")
def user_list(tenant: Tenant) -> None:
    """The tenant's users: e-mail, role, active, MFA."""
    from sqlalchemy import select

    from steward.server.accounts.models import User

    async def work(session: AsyncSession) -> list[Any]:
        from steward.server.tenancy.service import get_tenant_by_slug

        found = await get_tenant_by_slug(session, tenant)
        rows = await session.scalars(
            select(User).where(User.tenant_id == found.id).order_by(User.email)
        )
        return list(rows)

    for user in run_or_fail(load_settings(), work):
        state = "active" if user.is_active else "disabled"
        mfa = "mfa" if user.mfa_enabled else "no-mfa"
        typer.echo(f"{user.email}\t{user.role}\t{state}\t{mfa}")


@user_app.command("reset-mfa")
def user_reset_mfa(tenant: Tenant, email: Email) -> None:
    """Remove a user's second factor (a lost phone); their sessions end."""
    from steward.server.accounts.users import reset_mfa

    async def work(session: AsyncSession) -> Any:
        found, user = await _user(session, tenant, email)
        await reset_mfa(session, user)
        return found.id, user.id

    tenant_id, user_id = run_or_fail(load_settings(), work)
    asyncio.run(_audit(tenant_id, "mfa.reset", f"user:{user_id}", email=email))
    typer.echo(f"two-factor authentication removed for {email}")


@user_app.command("unlock")
def user_unlock(tenant: Tenant, email: Email) -> None:
    """Clear a lock-out after too many failed sign-ins."""
    from sqlalchemy import delete

    from steward.server.accounts import lockout
    from steward.server.accounts.models import LoginFailure

    async def work(session: AsyncSession) -> Any:
        found, user = await _user(session, tenant, email)
        keys = [lockout.account_key(tenant, email), lockout.second_factor_key(user.id)]
        await session.execute(delete(LoginFailure).where(LoginFailure.key.in_(keys)))
        return found.id, user.id

    tenant_id, user_id = run_or_fail(load_settings(), work)
    asyncio.run(_audit(tenant_id, "account.unlock", f"user:{user_id}", email=email))
    typer.echo(f"{email} may sign in again")


@command_app.command("run")
def command_run(
    tenant: Tenant,
    as_user: Annotated[str, typer.Option("--as", help="run as this user (their role and scope)")],
    device: Annotated[str, typer.Option(help="device id")],
    command: Annotated[str, typer.Argument(help="shell command text")],
) -> None:
    """Queue a shell command as a user: refused exactly as the API would refuse them."""
    from steward.server.accounts.service import load_principal
    from steward.server.commands.schemas import CommandCreate
    from steward.server.commands.service import create_command
    from steward.server.db.tenant_filter import bind_tenant

    try:
        device_id = uuid.UUID(device)
    except ValueError:
        raise typer.BadParameter("not a device id", param_hint="--device") from None
    request = CommandCreate.model_validate({"type": "shell", "payload": {"command": command}})

    if not command.strip():
        raise typer.BadParameter("empty command", param_hint="COMMAND")

    async def find(session: AsyncSession) -> Any:
        found, user = await _user(session, tenant, as_user)
        return found.id, user.id

    tenant_id, user_id = run_or_fail(load_settings(), find)

    async def work(session: AsyncSession) -> Any:
        # A session of the user's tenant only, as for a request: nothing else is visible.
        bind_tenant(session, tenant_id)
        principal = await load_principal(session, user_id)
        created = await create_command(
            session, principal, device_id, request, load_settings().command_timeout_s
        )
        return tenant_id, created.id, created.status

    try:
        tenant_id, command_id, status = asyncio.run(_in_tenant(work))
    except Exception as exc:
        raise fail(exc) from None
    asyncio.run(
        _audit(tenant_id, "command.submitted", f"command:{command_id}", via="cli", user=as_user)
    )
    typer.echo(f"{command_id}\t{status}")


async def _in_tenant(work: Any) -> Any:
    """`work(session)` in a session bound to no tenant yet (the work binds one), committed."""
    from steward.server.db.engine import create_engine, create_session_factory

    engine = create_engine(load_settings().effective_database_url)
    try:
        async with create_session_factory(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()
