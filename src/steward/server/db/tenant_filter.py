"""Tenant isolation in one place.

Every session starts without a tenant context, and a query on a `TenantOwned` model in that
state raises `TenantContextMissing`. Code chooses, once per session:

- `bind_tenant(session, tenant_id)`: the session sees only that tenant's rows of every
  `TenantOwned` model, and new `TenantOwned` rows are stamped with that tenant;
- `bind_system(session)`: explicit system work that spans tenants (the agent gateway, periodic
  jobs, operator commands, platform pages). It addresses rows by primary key or by a tenant it
  was given.

Code outside `db/` never writes a tenant filter by hand. On PostgreSQL the same context is also
set on the connection per transaction, for the row-level security policies (see `db/rls.py`).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from steward.server.db.base import TenantOwned

TENANT_CONTEXT_KEY = "tenant_id"
SYSTEM_CONTEXT = "system"
_KEY = TENANT_CONTEXT_KEY
_SYSTEM = SYSTEM_CONTEXT


class TenantContextMissing(RuntimeError):
    """A tenant-owned model was queried by a session bound to no tenant (a programming error)."""


def bind_tenant(session: AsyncSession | Session, tenant_id: uuid.UUID) -> None:
    current = session.info.get(_KEY)
    if current is not None and current != tenant_id:
        raise PermissionError("this session is already bound to another context")
    session.info[_KEY] = tenant_id


def bind_system(session: AsyncSession | Session) -> None:
    current = session.info.get(_KEY)
    if current is not None and current != _SYSTEM:
        raise PermissionError("a tenant-bound session cannot become a system session")
    session.info[_KEY] = _SYSTEM


def bound_tenant(session: AsyncSession | Session) -> uuid.UUID | None:
    value = session.info.get(_KEY)
    return value if isinstance(value, uuid.UUID) else None


def is_system(session: AsyncSession | Session) -> bool:
    return session.info.get(_KEY) == _SYSTEM


def _touches_tenant_owned(state: ORMExecuteState) -> bool:
    if any(issubclass(m.class_, TenantOwned) for m in state.all_mappers):
        return True
    table = getattr(state.statement, "table", None)  # Core INSERT / UPDATE / DELETE
    return table is not None and "tenant_id" in getattr(table, "c", ())


def _add_criteria(state: ORMExecuteState) -> None:
    context = state.session.info.get(_KEY)
    if context == _SYSTEM or state.is_column_load or state.is_relationship_load:
        return
    if context is None:
        if _touches_tenant_owned(state):
            raise TenantContextMissing(
                "query on a tenant-owned table without a tenant context; "
                "bind_tenant() or bind_system() the session first"
            )
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                TenantOwned,
                lambda cls: cls.tenant_id == context,
                include_aliases=True,
            )
        )


def _stamp(session: Session, _ctx: Any, _instances: Any) -> None:
    context = session.info.get(_KEY)
    if context == _SYSTEM:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, TenantOwned):
            continue
        if context is None:
            raise TenantContextMissing("writing a tenant-owned row without a tenant context")
        current = getattr(obj, "tenant_id", None)
        if current is None and obj in session.new:
            obj.tenant_id = context
        elif current != context:
            raise PermissionError("refusing to write a row of another tenant")


def install_tenant_filter(factory: async_sessionmaker[AsyncSession]) -> None:
    sync_cls = factory.kw.get("sync_session_class", Session)
    if getattr(sync_cls, "_steward_tenant_filter", False):
        return

    class TenantSession(sync_cls):  # type: ignore[valid-type, misc]
        _steward_tenant_filter = True

    event.listen(TenantSession, "do_orm_execute", _add_criteria)
    event.listen(TenantSession, "before_flush", _stamp)
    from steward.server.db import rls  # imported here: rls reads this module's bindings

    rls.install(TenantSession)
    factory.configure(sync_session_class=TenantSession)
