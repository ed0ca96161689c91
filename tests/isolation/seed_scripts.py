"""A script of each side, for the isolation cases (`{script_id}` is B's)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def seed(api: httpx.Client, side: Any) -> dict[str, str]:
    name = f"isolated-{uuid.uuid4().hex[:8]}"
    made = api.post(
        "/api/v1/scripts",
        json={
            "name": name,
            "interpreter": "sh",
            "body": "echo secret-of-the-tenant\n",
            "parameters": [{"name": "target", "type": "string"}],
        },
    )
    made.raise_for_status()
    # Every value here is also a marker that must never show up in an answer to A: hence a
    # version number no ordinary answer contains (A's request is refused on the script anyway).
    return {"script_id": str(made.json()["id"]), "script_name": name, "version": "424242"}
