"""Tenant isolation in one place.

A session bound to a tenant (`bind_tenant`) sees only that tenant's rows of every `TenantOwned`
model, and new `TenantOwned` rows are stamped with that tenant. Code outside `db/` never writes a
tenant filter by hand. System work (the agent gateway, periodic jobs) uses an unbound session and
addresses rows by primary key.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from steward.server.db.base import TenantOwned

_KEY = "tenant_id"


def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    session.info[_KEY] = tenant_id


def bound_tenant(session: AsyncSession | Session) -> uuid.UUID | None:
    return session.info.get(_KEY)


def _add_criteria(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get(_KEY)
    if tenant_id is None or state.is_column_load or state.is_relationship_load:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                TenantOwned,
                lambda cls: cls.tenant_id == tenant_id,
                include_aliases=True,
            )
        )


def _stamp(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant_id = session.info.get(_KEY)
    if tenant_id is None:
        return
    for obj in session.new:
        if isinstance(obj, TenantOwned):
            current = getattr(obj, "tenant_id", None)
            if current is None:
                obj.tenant_id = tenant_id
            elif current != tenant_id:
                raise PermissionError("refusing to write a row of another tenant")


def install_tenant_filter(factory: async_sessionmaker[AsyncSession]) -> None:
    sync_cls = factory.kw.get("sync_session_class", Session)
    if getattr(sync_cls, "_steward_tenant_filter", False):
        return

    class TenantSession(sync_cls):  # type: ignore[valid-type, misc]
        _steward_tenant_filter = True

    event.listen(TenantSession, "do_orm_execute", _add_criteria)
    event.listen(TenantSession, "before_flush", _stamp)
    factory.configure(sync_session_class=TenantSession)
