"""Sign-in flows through the real server: MFA, lock-out, sessions, step-up, approvals, IP
allow-list. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select, update

from steward.server.accounts.models import UserSession
from steward.server.accounts.principal import utcnow
from steward.server.accounts.service import check_password_policy
from steward.server.audit.models import AuditEvent
from steward.server.db.engine import standalone_session
from steward.server.errors import InvalidInput
from tests.support import (
    LiveServer,
    SeededTenant,
    Seeder,
    agent_auth,
    enroll,
    login,
    run_async,
    tenant_client,
)

LOGIN = "/api/v1/auth/login"


def _code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def _db(server: LiveServer, work: Any) -> Any:
    async def main() -> Any:
        async with standalone_session(server.settings.effective_database_url) as session:
            result = await work(session)
            await session.commit()
            return result

    return run_async(main)


def _events(server: LiveServer, tenant: SeededTenant, action: str) -> list[AuditEvent]:
    async def work(session: Any) -> list[AuditEvent]:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == tenant.tenant_id, AuditEvent.action == action
            )
        )
        return list(rows)

    result: list[AuditEvent] = _db(server, work)
    return result


def _bearer(server: LiveServer, tenant: SeededTenant, token: str) -> httpx.Client:
    return tenant_client(server, tenant.slug, Authorization=f"Bearer {token}")


def _enable_mfa(api: httpx.Client) -> tuple[str, list[str], str]:
    setup = api.post("/api/v1/account/mfa/setup")
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    assert "<svg" in setup.json()["qr_svg"]
    assert api.post("/api/v1/account/mfa/confirm", json={"code": "000000"}).status_code == 401
    confirmed = api.post("/api/v1/account/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert len(body["recovery_codes"]) == 10
    return secret, body["recovery_codes"], body["access_token"]


def test_password_policy() -> None:
    check_password_policy("quiet-lantern-42", email="kim@school.kr")
    for weak in ("short", "1234567890", "aaaaaaaaaaaa", "kimchi-kim-2024"):
        with pytest.raises(InvalidInput):
            check_password_policy(weak, email="kimchi@school.kr")


def test_mfa_login_replay_and_recovery_codes(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with login(server, tenant) as api:
        secret, recovery, token = _enable_mfa(api)
        # the session was rotated: the old token is over, the new one works
        assert api.get("/api/v1/account").status_code == 401
    with _bearer(server, tenant, token) as api:
        assert api.get("/api/v1/account").json()["mfa_enabled"] is True
    with tenant_client(server, tenant.slug) as http:
        password = {"email": tenant.admin_email, "password": tenant.password}
        first = http.post(LOGIN, json=password).json()
        assert first["status"] == "mfa_required" and first["access_token"] is None
        mfa_token = first["mfa_token"]
        # a challenge is not an access token
        with _bearer(server, tenant, mfa_token) as wrong_use:
            assert wrong_use.get("/api/v1/account").status_code == 401
        wrong = http.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": "123456"})
        assert wrong.status_code == 401 and _code(wrong) == "invalid_code"
        # a code works once: the second use of the same code is refused
        code = pyotp.TOTP(secret).now()
        used = http.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": code})
        if used.status_code == 401:  # set-up used this very time step; take the next one
            code = pyotp.TOTP(secret).at(utcnow().timestamp() + 30)
            used = http.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": code})
        assert used.status_code == 200, used.text
        replay = http.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": code})
        assert replay.status_code == 401
        # a recovery code works once
        used = http.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": recovery[0]})
        assert used.status_code == 200 and used.json()["status"] == "ok"
        again = http.post("/api/v1/auth/mfa", json={"mfa_token": mfa_token, "code": recovery[0]})
        assert again.status_code == 401
    assert _events(server, tenant, "mfa.enable") and _events(server, tenant, "mfa.failure")
    success = _events(server, tenant, "login.success")
    assert any(e.detail.get("mfa") for e in success)


def test_tenant_requiring_mfa_allows_only_set_up(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    engineer = seeder.user(tenant, "ENGINEER")
    with login(server, tenant) as admin:
        policy = admin.get("/api/v1/tenant/security").json()
        policy |= {"mfa_required": "roles", "mfa_roles": ["ENGINEER"]}
        assert admin.put("/api/v1/tenant/security", json=policy).status_code == 200
    with tenant_client(server, tenant.slug) as http:
        body = http.post(LOGIN, json={"email": engineer, "password": tenant.password}).json()
    assert body["status"] == "mfa_setup_required"
    with _bearer(server, tenant, body["access_token"]) as api:
        refused = api.get("/api/v1/devices")
        assert refused.status_code == 403 and _code(refused) == "mfa_setup_required"
        assert api.get("/api/v1/account").json()["mfa_required"] is True
        _, _, token = _enable_mfa(api)
    with _bearer(server, tenant, token) as api:
        assert api.get("/api/v1/devices").status_code == 200
        disable = api.post("/api/v1/account/mfa/disable", json={"code": "000000"})
        assert disable.status_code == 409 and _code(disable) == "mfa_required"


def test_lock_out_backs_off_and_is_audited(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with tenant_client(server, tenant.slug) as http:
        wrong = {"email": tenant.admin_email, "password": "wrong-password-1"}
        statuses = [http.post(LOGIN, json=wrong).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        right = http.post(LOGIN, json=wrong | {"password": tenant.password})
        assert right.status_code == 429 and 0 < int(right.headers["retry-after"]) <= 30
        # an unknown account is locked out exactly like a real one
        ghost = {"email": "nobody@nowhere.example", "password": "wrong-password-1"}
        assert [http.post(LOGIN, json=ghost).status_code for _ in range(6)][-1] == 429
    assert len(_events(server, tenant, "login.failure")) >= 10
    assert _events(server, tenant, "login.locked_out")[0].risk == "high"


def test_sessions_expire_rotate_and_can_be_revoked(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    first, second = login(server, tenant), login(server, tenant)
    with first, second:
        sessions = first.get("/api/v1/account/sessions").json()
        assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
        other = next(s["id"] for s in sessions if not s["current"])
        assert first.delete(f"/api/v1/account/sessions/{other}").status_code == 204
        revoked = second.get("/api/v1/account")
        assert revoked.status_code == 401 and _code(revoked) == "session_revoked"
        assert first.delete(f"/api/v1/account/sessions/{uuid.uuid4()}").status_code == 404

        # idle for longer than the tenant allows (60 minutes by default)
        async def idle(session: Any) -> None:
            await session.execute(
                update(UserSession)
                .where(UserSession.tenant_id == tenant.tenant_id)
                .values(last_seen_at=utcnow() - timedelta(minutes=61))
            )

        _db(server, idle)
        expired = first.get("/api/v1/account")
        assert expired.status_code == 401 and _code(expired) == "session_expired"
    with login(server, tenant) as third, login(server, tenant) as fourth:

        async def past_lifetime(session: Any) -> None:
            await session.execute(
                update(UserSession)
                .where(UserSession.tenant_id == tenant.tenant_id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

        assert third.post("/api/v1/account/sessions/revoke-all").status_code == 204
        assert third.get("/api/v1/account").status_code == 401
        assert fourth.get("/api/v1/account").status_code == 401
    with login(server, tenant) as fifth:
        _db(server, past_lifetime)
        assert _code(fifth.get("/api/v1/account")) == "session_expired"
    assert _events(server, tenant, "session.revoke_all")


def test_role_change_ends_the_users_sessions(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    email = seeder.user(tenant, "ENGINEER")
    with login(server, tenant) as admin, login(server, tenant, email) as engineer:
        user_id = engineer.get("/api/v1/account").json()["id"]
        changed = admin.patch(f"/api/v1/users/{user_id}", json={"role": "VIEWER"})
        assert changed.status_code == 200 and changed.json()["role"] == "VIEWER"
        assert engineer.get("/api/v1/account").status_code == 401
        me = admin.get("/api/v1/account").json()["id"]
        last = admin.patch(f"/api/v1/users/{me}", json={"role": "PM"})
        assert last.status_code == 409 and _code(last) in ("last_admin", "own_account")
    event = _events(server, tenant, "user.update")[0]
    assert event.risk == "high" and event.detail["changes"]["role"] == ["ENGINEER", "VIEWER"]


def test_approval_required_own_approval_refused_and_step_up(
    server: LiveServer, seeder: Seeder
) -> None:
    tenant = seeder.tenant()
    device_id = enroll(server, seeder.pin(tenant))["device_id"]
    runner = seeder.user(tenant, "ENGINEER")
    approver = seeder.user(tenant, "PM")
    with login(server, tenant) as admin:
        runner_id = next(u["id"] for u in admin.get("/api/v1/users").json() if u["email"] == runner)
        scope = {"scope": {"approval_required": True}}
        assert admin.patch(f"/api/v1/users/{runner_id}", json=scope).status_code == 200
    shell = {"type": "shell", "payload": {"command": "echo approved"}}
    with login(server, tenant, runner) as api:
        created = api.post(f"/api/v1/devices/{device_id}/commands", json=shell)
        assert created.status_code == 201 and created.json()["status"] == "pending_approval"
        command_id = created.json()["id"]
        own = api.post(f"/api/v1/commands/{command_id}/approve")
        assert own.status_code == 403 and _code(own) == "own_command"
    with login(server, tenant, approver) as api:
        secret, _, token = _enable_mfa(api)
    with _bearer(server, tenant, token) as api:
        # MFA was just proved (set-up counts): approving is allowed now
        approved = api.post(f"/api/v1/commands/{command_id}/approve")
        assert approved.status_code == 200 and approved.json()["status"] == "queued"
        again = api.post(f"/api/v1/commands/{command_id}/approve")
        assert again.status_code == 409

    async def stale(session: Any) -> None:
        await session.execute(
            update(UserSession)
            .where(UserSession.tenant_id == tenant.tenant_id)
            .values(mfa_at=utcnow() - timedelta(hours=1))
        )

    with login(server, tenant, runner) as api:
        second = api.post(f"/api/v1/devices/{device_id}/commands", json=shell).json()["id"]
    _db(server, stale)
    with _bearer(server, tenant, token) as api:
        refused = api.post(f"/api/v1/commands/{second}/deny")
        assert refused.status_code == 403 and _code(refused) == "step_up_required"
        stepped = api.post("/api/v1/auth/step-up", json={"code": "999999"})
        assert stepped.status_code == 401
        totp = pyotp.TOTP(secret)
        code = totp.at(utcnow().timestamp() + 30)  # the next step: the current one was used
        stepped = api.post("/api/v1/auth/step-up", json={"code": code})
        assert stepped.status_code == 200, stepped.text
    with _bearer(server, tenant, stepped.json()["access_token"]) as api:
        denied = api.post(f"/api/v1/commands/{second}/deny")
        assert denied.status_code == 200 and denied.json()["status"] == "denied"
    actions = {e.action for e in _events(server, tenant, "command.approved")}
    assert actions == {"command.approved"}
    blocked = _events(server, tenant, "command.approved")
    assert any(e.result == "blocked" for e in blocked)
    assert _events(server, tenant, "command.denied")


def test_ip_allow_list(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    credentials = enroll(server, seeder.pin(tenant))
    with login(server, tenant) as admin:
        policy = admin.get("/api/v1/tenant/security").json()
        locked = admin.put(
            "/api/v1/tenant/security", json=policy | {"ip_allowlist": ["10.0.0.0/8"]}
        )
        assert locked.status_code == 409 and _code(locked) == "would_lock_out"
        bad = admin.put("/api/v1/tenant/security", json=policy | {"ip_allowlist": ["10.0.0/33"]})
        assert bad.status_code == 422
        ok = admin.put("/api/v1/tenant/security", json=policy | {"ip_allowlist": ["127.0.0.0/8"]})
        assert ok.status_code == 200 and admin.get("/api/v1/account").status_code == 200

        async def elsewhere(session: Any) -> None:
            from steward.server.tenancy.models import Tenant

            row = await session.get(Tenant, tenant.tenant_id)
            row.settings = {"security": policy | {"ip_allowlist": ["10.0.0.0/8"]}}

        _db(server, elsewhere)
        server.app.state.runtime.tenants.forget(tenant.slug)
        refused = admin.get("/api/v1/account")
        assert refused.status_code == 403 and _code(refused) == "address_not_allowed"
        assert admin.get("/api/v1/devices").status_code == 403
    # agents are not held by it
    poll = httpx.post(
        f"{server.url}/api/agent/v1/poll",
        json={"messages": []},
        headers=agent_auth(credentials),
        timeout=10,
    )
    assert poll.status_code == 200
    assert len(_events(server, tenant, "address_refused")) == 1  # once a minute per address


def test_refusals_are_recorded_once_a_minute(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    viewer = seeder.user(tenant, "VIEWER")
    with login(server, tenant, viewer) as api:
        for _ in range(5):
            refused = api.get("/api/v1/users")
            assert refused.status_code == 403 and _code(refused) == "forbidden"
        assert api.get("/api/v1/tenant/security").status_code == 403
    events = _events(server, tenant, "access.denied")
    assert sorted(e.detail["permission"] for e in events) == ["tenant.manage", "user.manage"]
    assert all(e.result == "blocked" and e.actor_name == viewer for e in events)


def _form_token(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_invitation_sets_the_first_password_once(server: LiveServer, seeder: Seeder) -> None:
    tenant, other = seeder.tenant(), seeder.tenant()
    with login(server, tenant) as admin:
        created = admin.post("/api/v1/users", json={"email": "new@lab.example", "role": "ENGINEER"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["invited"] is True
        link = body["invitation"]["invite_url"]
        path = "/invite/" + link.rsplit("/invite/", 1)[1]
        assert link.startswith(f"http://{tenant.slug}.localhost:{server.port}/invite/")
    with tenant_client(server, tenant.slug) as http:
        # no password works before the invitation is accepted (not even the timing dummy's)
        for guess in ("", "steward-timing-equaliser", "anything-at-all-1"):
            attempt = http.post(LOGIN, json={"email": "new@lab.example", "password": guess or "x"})
            assert attempt.status_code == 401
        with tenant_client(server, other.slug) as elsewhere:  # another tenant's host: unknown
            assert elsewhere.get(path).status_code == 404
        assert http.get("/invite/" + "x" * 43).status_code == 404
        form = http.get(path)
        assert form.status_code == 200 and "new@lab.example" in form.text
        token = _form_token(form.text)
        weak = http.post(path, data={"csrf_token": token, "password": "short"})
        assert weak.status_code == 422
        accepted = http.post(path, data={"csrf_token": token, "password": "quiet-lantern-42"})
        assert accepted.status_code == 303 and accepted.headers["location"] == "/login"
        assert http.get(path).status_code == 404  # spent
        signed_in = http.post(
            LOGIN, json={"email": "new@lab.example", "password": "quiet-lantern-42"}
        )
        assert signed_in.status_code == 200 and signed_in.json()["status"] == "ok"
    with login(server, tenant) as admin:
        user_id = body["id"]
        again = admin.post(f"/api/v1/users/{user_id}/invite")
        assert again.status_code == 409 and _code(again) == "already_signed_up"
    assert _events(server, tenant, "user.invite") and _events(
        server, tenant, "user.invite_accepted"
    )
