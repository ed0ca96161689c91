"""A terminal session of each side (its device has no agent: the session failed to open, its
row and recording header exist): `{terminal_session_id}` is B's."""

from __future__ import annotations

from typing import Any

import httpx

from tests.terminal.support import offline_session


def seed(api: httpx.Client, side: Any) -> dict[str, str]:
    session_id = offline_session(
        str(api.base_url), api.headers["Host"], api.headers["Authorization"], side.device_ids[0]
    )
    return {"terminal_session_id": session_id}
