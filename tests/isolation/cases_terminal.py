"""Tenant A's users against tenant B's terminal sessions and devices: 404, or lists and a
policy that are A's own. The WebSockets are proven by tests/terminal/test_sockets.py."""

from __future__ import annotations

from tests.isolation.cases import Case, api, exempt, page

SESSION = "/api/v1/terminal/sessions/{terminal_session_id}"
PAGE = "/terminal/sessions/{terminal_session_id}"
SOCKETS = "tests/terminal/test_sockets.py"
# The console's settings page, sent the defaults.
SETTINGS_FORM = {
    "idle_timeout_min": "15",
    "max_duration_min": "240",
    "recording_failure_policy": "strict",
}

CASES: list[Case] = [
    api("GET", "/api/v1/terminal/sessions", 200, variant="all"),
    api("GET", "/api/v1/terminal/sessions", 200, query="?device_id={device_id}",
        variant="B's device"),
    api("GET", SESSION, 404),
    api("GET", SESSION + "/recording", 404),
    api("GET", SESSION + "/search", 404, query="?q=a"),
    api("POST", SESSION + "/terminate", 404, manage=True, modifies=True),
    api("GET", "/api/v1/tenant/terminal-policy", 200, manage=True),
    api("PUT", "/api/v1/tenant/terminal-policy", 200, body={}, manage=True, modifies=True,
        variant="only A's own policy"),
    page("GET", "/settings/terminal", 200, manage=True),
    page("POST", "/settings/terminal", 303, body=SETTINGS_FORM, manage=True, modifies=True,
         variant="only A's own policy"),
    page("GET", "/devices/{device_id}/terminal", 404, manage=True),
    page("GET", "/terminal/sessions", 200, variant="all"),
    page("GET", "/terminal/sessions", 200, query="?device={device_id}", variant="B's device"),
    page("GET", PAGE, 404),
    page("GET", PAGE + "/recording.cast", 404),
    page("GET", PAGE + "/watch", 404, manage=True),
    page("POST", PAGE + "/terminate", 404, manage=True, modifies=True),
    exempt("WS", "/api/v1/devices/{device_id}/terminal",
           f"another tenant's device: 4404: {SOCKETS}::test_refused_roles_devices_and_credentials"),
    exempt("WS", "/api/v1/terminal/sessions/{terminal_session_id}/watch",
           f"another tenant's session: 4404: {SOCKETS}::test_watching_live_and_terminating"),
]  # fmt: skip
