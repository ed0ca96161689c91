"""Ids for the file cases. B's device has no agent, so no upload or backup of B's can be made
through the API here: the ids are unknown ones, and A meets B's device (404) before any of them
is looked up. A real backup of another tenant's is refused in tests/files/test_api.py."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def seed(api: httpx.Client, side: Any) -> dict[str, str]:
    return {"upload_id": str(uuid.uuid4()), "backup_id": str(uuid.uuid4())}
