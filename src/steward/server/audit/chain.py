"""The hash chain over a tenant's audit events.

Entry n stores `hash = SHA-256(prev_hash || canonical JSON of its fields)` where `prev_hash`
is entry n-1's hash (or `GENESIS` for the first). Changing, removing or reordering a row
changes a hash that a later row (or the tenant's head) committed to.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical_time(at: datetime) -> str:
    """Times as stored: UTC, microseconds (both SQLite and PostgreSQL keep them)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    prev_hash: str,
    tenant_id: uuid.UUID,
    seq: int,
    at: datetime,
    actor: str,
    actor_name: str,
    address: str,
    user_agent: str,
    action: str,
    target: str,
    device_id: uuid.UUID | None,
    result: str,
    risk: str,
    detail: dict[str, Any],
) -> str:
    fields = {
        "tenant": str(tenant_id),
        "seq": seq,
        "at": canonical_time(at),
        "actor": actor,
        "actor_name": actor_name,
        "address": address,
        "user_agent": user_agent,
        "action": action,
        "target": target,
        "device": str(device_id) if device_id else "",
        "result": result,
        "risk": risk,
        "detail": detail,
    }
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def json_safe(detail: dict[str, Any] | None) -> dict[str, Any]:
    """The detail as it will read back from a JSON column (so its hash does not change)."""
    loaded: dict[str, Any] = json.loads(json.dumps(detail or {}, default=str))
    return loaded
