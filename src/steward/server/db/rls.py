"""The session's tenant context on the PostgreSQL connection, for row-level security.

Migration 0004 puts a `tenant_isolation` policy on every tenant-owned table: a row is visible
and writable when `steward.system` is 'on', or when its `tenant_id` equals `steward.tenant_id`.
This module sets both settings, transaction-local (`set_config(..., true)`), from the
session's binding (see `tenant_filter`): when a transaction begins, and again before an ORM
execute or a flush when the session was bound after its transaction began (a request reads
its user, then binds the tenant). An unbound session sets nothing and sees no tenant-owned row.

It is a second wall behind the ORM filter: a hand-written SQL statement, a Core statement on
the session's connection or a missed filter still cannot reach another tenant's rows. SQLite
has no row-level security; there this module does nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from steward.server.db.tenant_filter import bound_tenant, is_system

TENANT_SETTING = "steward.tenant_id"
SYSTEM_SETTING = "steward.system"

# What was set on the connection in the current transaction; absent when nothing was.
_APPLIED_KEY = "_steward_rls_applied"

# The one statement per transaction this costs; query counters can recognise it by its start.
SET_CONTEXT_PREFIX = f"SELECT set_config('{TENANT_SETTING}',"
_SET_CONTEXT = text(
    f"{SET_CONTEXT_PREFIX} :tenant_id, true), set_config('{SYSTEM_SETTING}', :system, true)"
)

Context = uuid.UUID | str | None  # a tenant, "system", or unbound


def _wanted(session: Session) -> Context:
    if is_system(session):
        return "system"
    return bound_tenant(session)


def _apply(session: Session, connection: Connection, context: Context) -> None:
    connection.execute(
        _SET_CONTEXT,
        {
            "tenant_id": str(context) if isinstance(context, uuid.UUID) else "",
            "system": "on" if context == "system" else "off",
        },
    )
    session.info[_APPLIED_KEY] = context


def _after_begin(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    session.info.pop(_APPLIED_KEY, None)
    if connection.dialect.name != "postgresql":
        return
    context = _wanted(session)
    if context is not None:
        _apply(session, connection, context)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # Not after the inner transaction of each flush, which changes nothing on the connection.
    # After a savepoint, yes: rolling one back undoes a set_config made inside it, so the next
    # statement sets the context again (one more statement, only after a savepoint).
    if transaction.parent is None or transaction.nested:
        session.info.pop(_APPLIED_KEY, None)


def _catch_up(session: Session) -> None:
    """Set the context when the binding changed since it was last set in this transaction."""
    context = _wanted(session)
    if session.info.get(_APPLIED_KEY) == context:
        return  # also: unbound, and nothing set
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Begins the transaction if none has (then `_after_begin` has set the context already).
    connection = session.connection()
    if session.info.get(_APPLIED_KEY) != context:
        _apply(session, connection, context)


def _before_execute(state: ORMExecuteState) -> None:
    _catch_up(state.session)


def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    _catch_up(session)


def install(session_class: type[Session]) -> None:
    """Keep the PostgreSQL tenant context of every session of `session_class` current."""
    event.listen(session_class, "after_begin", _after_begin)
    event.listen(session_class, "after_transaction_end", _after_transaction_end)
    event.listen(session_class, "do_orm_execute", _before_execute)
    event.listen(session_class, "before_flush", _before_flush)
