"""Self-service routes that end the caller's own sessions (not run by the isolation table,
whose shared tokens they would end): they touch nobody else's, least of all another tenant's."""

from __future__ import annotations

import pytest

from tests.permissions.support import bearer, sign_in
from tests.support import LiveServer, Seeder, tenant_client


@pytest.mark.parametrize("path", ["/api/v1/auth/logout", "/api/v1/account/sessions/revoke-all"])
def test_logging_out_ends_only_own_sessions(server: LiveServer, seeder: Seeder, path: str) -> None:
    a, b = seeder.tenant(), seeder.tenant()
    colleague = seeder.user(a, "VIEWER")
    a_first, a_second = sign_in(server, a, a.admin_email), sign_in(server, a, a.admin_email)
    a_colleague = sign_in(server, a, colleague)
    b_admin = sign_in(server, b, b.admin_email)

    with tenant_client(server, a.slug, **bearer(a_first)) as api:
        assert api.post(path).status_code == 204
        assert api.get("/api/v1/account").status_code == 401  # this session ended
    with tenant_client(server, a.slug, **bearer(a_second)) as api:
        second = api.get("/api/v1/account").status_code
    # logout ends this session only; revoke-all every session of the caller
    assert second == (401 if path.endswith("revoke-all") else 200)
    with tenant_client(server, a.slug, **bearer(a_colleague)) as api:
        assert api.get("/api/v1/account").status_code == 200
    with tenant_client(server, b.slug, **bearer(b_admin)) as api:
        assert api.get("/api/v1/account").status_code == 200
        sessions = api.get("/api/v1/account/sessions").json()
    assert len(sessions) == 1 and sessions[0]["current"]
