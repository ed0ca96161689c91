from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    seq: int
    at: datetime
    actor: str
    actor_name: str
    address: str
    user_agent: str
    action: str
    target: str
    device_id: uuid.UUID | None
    result: str
    risk: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditEventPage(BaseModel):
    events: list[AuditEventPublic]
    next_before_seq: int | None  # pass as `before_seq` for older events; null on the last page


class ChainReport(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    event_id: int | None
    kind: str | None
    message: str
