"""How the permission matrix calls the terminal routes: on a session of the team's tenant (its
device has no agent, so the session failed to open; its row and recording exist)."""

from __future__ import annotations

from typing import Any

from steward.server.accounts.models import Role
from tests.permissions.routes import Key, Request
from tests.terminal.support import offline_session


def _session(team: Any) -> str:
    return offline_session(
        team.server.url,
        f"{team.tenant.slug}.localhost:{team.server.port}",
        f"Bearer {team.tokens[Role.ADMIN]}",
        team.device_id,
    )


FRESH = {"terminal_session_id": _session}


def _on_session(**kwargs: Any) -> Request:
    return Request(fresh=("terminal_session_id",), **kwargs)


REQUESTS: dict[Key, Request] = {
    ("GET", "/api/v1/terminal/sessions/{terminal_session_id}"): _on_session(),
    ("GET", "/api/v1/terminal/sessions/{terminal_session_id}/recording"): _on_session(),
    ("GET", "/api/v1/terminal/sessions/{terminal_session_id}/search"): _on_session(query="?q=x"),
    # an ended session: 409 for those who may terminate, 403 for the others
    ("POST", "/api/v1/terminal/sessions/{terminal_session_id}/terminate"): _on_session(),
    ("PUT", "/api/v1/tenant/terminal-policy"): Request({}),  # the defaults
    ("POST", "/settings/terminal"): Request(  # the defaults, from the console's settings page
        {"idle_timeout_min": "15", "max_duration_min": "240", "recording_failure_policy": "strict"}
    ),
    ("GET", "/terminal/sessions/{terminal_session_id}"): _on_session(),
    ("GET", "/terminal/sessions/{terminal_session_id}/recording.cast"): _on_session(),
    ("GET", "/terminal/sessions/{terminal_session_id}/watch"): _on_session(),
    ("POST", "/terminal/sessions/{terminal_session_id}/terminate"): _on_session(),
}

_OTHERS = "a customer (neither audit.view nor terminal.open) sees only their own sessions"
REFUSED_BEYOND_PERMISSION: dict[tuple[Key, str], str] = {
    (("GET", "/api/v1/terminal/sessions/{terminal_session_id}"), "CUSTOMER"): _OTHERS,
    (("GET", "/api/v1/terminal/sessions/{terminal_session_id}/recording"), "CUSTOMER"): _OTHERS,
    (("GET", "/api/v1/terminal/sessions/{terminal_session_id}/search"), "CUSTOMER"): _OTHERS,
    (("GET", "/terminal/sessions/{terminal_session_id}"), "CUSTOMER"): _OTHERS,
    (("GET", "/terminal/sessions/{terminal_session_id}/recording.cast"), "CUSTOMER"): _OTHERS,
}
