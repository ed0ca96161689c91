"""A user's scope on top of the role: devices and groups, denied permissions, command types and
shell patterns, time windows (in the tenant's time zone), approval. Deny beats allow.

`authorize` is tested with a frozen clock (`now=`); the device list and device routes through
the real server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from steward.server.accounts.models import Role
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import (
    Decision,
    Principal,
    authorize,
    effective_permissions,
)
from steward.server.accounts.scope import UserScope, parse_scope, shell_allowed
from steward.server.db.engine import standalone_session
from steward.server.errors import NotFound, PermissionDenied
from steward.server.tenancy.models import Group
from tests.permissions.support import bearer, set_scope, sign_in
from tests.support import LiveServer, Seeder, enroll, login, run_async, tenant_client

GROUP_X, GROUP_Y = uuid.uuid4(), uuid.uuid4()


@dataclass
class FakeDevice:
    id: uuid.UUID
    group_id: uuid.UUID


IN_X = FakeDevice(uuid.uuid4(), GROUP_X)
IN_Y = FakeDevice(uuid.uuid4(), GROUP_Y)


def principal(role: Role = Role.ENGINEER, timezone: str = "UTC", **scope: Any) -> Principal:
    parsed = UserScope.model_validate(scope)
    return Principal(
        user_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        tenant_slug="t",
        email="someone@t.example",
        role=role,
        permissions=effective_permissions(role, parsed),
        scope=parsed,
        timezone=timezone,
    )


def refused(code: str, who: Principal, permission: P, **kwargs: Any) -> None:
    with pytest.raises(PermissionDenied) as caught:
        authorize(who, permission, **kwargs)
    assert caught.value.code == code


# ---- time windows ----------------------------------------------------------------------------

# Monday 2026-11-23. 00:30 UTC is 09:30 in Seoul (UTC+9, no daylight saving time).
MON_0930_SEOUL = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
MON_1830_SEOUL = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
SAT_1000_SEOUL = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
OFFICE = [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00"}]


def test_a_window_is_read_in_the_tenants_time_zone() -> None:
    seoul = principal(timezone="Asia/Seoul", time_windows=OFFICE)
    assert authorize(seoul, P.COMMAND_RUN, now=MON_0930_SEOUL) == Decision()
    refused("outside_time_window", seoul, P.COMMAND_RUN, now=MON_1830_SEOUL)
    # for a tenant in UTC the same instant is Monday 00:30: outside
    utc = principal(time_windows=OFFICE)
    refused("outside_time_window", utc, P.COMMAND_RUN, now=MON_0930_SEOUL)


def test_weekdays_limit_a_window() -> None:
    seoul = principal(timezone="Asia/Seoul", time_windows=OFFICE)
    refused("outside_time_window", seoul, P.COMMAND_RUN, now=SAT_1000_SEOUL)
    weekend = principal(
        timezone="Asia/Seoul", time_windows=[{"days": ["sat"], "start": "08:00", "end": "12:00"}]
    )
    assert authorize(weekend, P.COMMAND_RUN, now=SAT_1000_SEOUL) == Decision()
    refused("outside_time_window", weekend, P.COMMAND_RUN, now=MON_0930_SEOUL)


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 11, 27, 22, 0, tzinfo=UTC), True),  # Friday 22:00, after the start
        (datetime(2026, 11, 28, 5, 59, tzinfo=UTC), True),  # Saturday 05:59: Friday's night
        (datetime(2026, 11, 28, 6, 0, tzinfo=UTC), False),  # Saturday 06:00: the end
        (datetime(2026, 11, 28, 22, 0, tzinfo=UTC), False),  # Saturday night: not a listed day
        (datetime(2026, 11, 23, 3, 0, tzinfo=UTC), False),  # Monday 03:00: Sunday not listed
        (datetime(2026, 11, 27, 12, 0, tzinfo=UTC), False),  # Friday noon
    ],
)
def test_an_overnight_window_runs_past_midnight(when: datetime, inside: bool) -> None:
    night = principal(time_windows=[{"days": ["fri"], "start": "22:00", "end": "06:00"}])
    if inside:
        assert authorize(night, P.COMMAND_RUN, now=when) == Decision()
    else:
        refused("outside_time_window", night, P.COMMAND_RUN, now=when)


@pytest.mark.parametrize("permission", [P.DEVICE_VIEW, P.AUDIT_VIEW, P.REQUEST_VIEW_ALL])
def test_looking_is_allowed_outside_the_windows(permission: P) -> None:
    pm = principal(Role.PM, timezone="Asia/Seoul", time_windows=OFFICE)
    assert authorize(pm, permission, now=SAT_1000_SEOUL) == Decision()
    for acting in (P.COMMAND_RUN, P.DEVICE_MANAGE, P.FILE_WRITE, P.TERMINAL_OPEN):
        refused("outside_time_window", pm, acting, now=SAT_1000_SEOUL)


def test_no_windows_means_any_time_and_an_empty_list_means_never() -> None:
    assert authorize(principal(), P.COMMAND_RUN, now=SAT_1000_SEOUL) == Decision()
    refused("outside_time_window", principal(time_windows=[]), P.COMMAND_RUN, now=SAT_1000_SEOUL)


def test_an_unreadable_stored_scope_denies_rather_than_allows() -> None:
    scope = parse_scope({"groups": "not a list"})
    assert scope.devices == [] and scope.command_types == [] and scope.time_windows == []


# ---- devices and groups: deny beats allow ----------------------------------------------------


def test_groups_and_devices_limit_what_is_reached() -> None:
    in_x = principal(groups=[GROUP_X])
    assert authorize(in_x, P.COMMAND_RUN, device=IN_X) == Decision()
    with pytest.raises(NotFound):
        authorize(in_x, P.DEVICE_VIEW, device=IN_Y)
    one_device = principal(devices=[IN_Y.id])
    assert authorize(one_device, P.DEVICE_VIEW, device=IN_Y) == Decision()
    with pytest.raises(NotFound):
        authorize(one_device, P.DEVICE_VIEW, device=IN_X)


def test_deny_groups_beat_groups_and_deny_devices_beat_devices() -> None:
    with pytest.raises(NotFound):
        authorize(principal(groups=[GROUP_X], deny_groups=[GROUP_X]), P.DEVICE_VIEW, device=IN_X)
    with pytest.raises(NotFound):
        authorize(principal(devices=[IN_X.id], deny_devices=[IN_X.id]), P.DEVICE_VIEW, device=IN_X)
    # a denied device inside an allowed group
    with pytest.raises(NotFound):
        authorize(principal(groups=[GROUP_X], deny_devices=[IN_X.id]), P.DEVICE_VIEW, device=IN_X)
    # deny lists alone leave the rest of the tenant reachable
    only_deny = principal(deny_groups=[GROUP_X])
    assert authorize(only_deny, P.DEVICE_VIEW, device=IN_Y) == Decision()
    with pytest.raises(NotFound):
        authorize(only_deny, P.DEVICE_VIEW, device=IN_X)


def test_customers_reach_only_assigned_devices() -> None:
    with pytest.raises(NotFound):
        authorize(principal(Role.CUSTOMER), P.DEVICE_VIEW, device=IN_X)
    assigned = principal(Role.CUSTOMER, devices=[IN_X.id])
    assert authorize(assigned, P.DEVICE_VIEW, device=IN_X) == Decision()
    refused("forbidden", assigned, P.COMMAND_RUN, device=IN_X)  # the role still limits


def test_deny_permissions_beat_the_role() -> None:
    admin = principal(Role.ADMIN, deny_permissions=["command.run", "user.manage"])
    refused("forbidden", admin, P.COMMAND_RUN)
    refused("forbidden", admin, P.USER_MANAGE)
    assert authorize(admin, P.DEVICE_MANAGE) == Decision()
    assert P.COMMAND_RUN not in admin.permissions


def test_a_role_check_comes_before_the_device() -> None:
    """A viewer asking to run a command on a device out of scope learns nothing about it."""
    refused("forbidden", principal(Role.VIEWER, groups=[GROUP_Y]), P.COMMAND_RUN, device=IN_X)


# ---- commands --------------------------------------------------------------------------------


def test_command_types_limit_what_may_run() -> None:
    shell_only = principal(command_types=["shell"])
    assert authorize(shell_only, P.COMMAND_RUN, command_type="shell") == Decision()
    refused("command_not_allowed", shell_only, P.COMMAND_RUN, command_type="reboot")
    refused("command_not_allowed", principal(command_types=[]), P.COMMAND_RUN, command_type="shell")


RESTART_ONLY: dict[str, Any] = {"command_allow": ["systemctl restart *", "uptime"]}


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        ("systemctl restart nginx", True),
        ("/usr/bin/systemctl restart nginx", True),  # the program by its base name
        ("systemctl restart nginx php-fpm", True),  # a last `*` takes the rest
        ("uptime", True),
        ("systemctl stop nginx", False),
        ("uptime -p", False),  # no `*`: exactly these words
        ("rm -rf /", False),
        ("systemctl restart nginx; rm -rf /", False),
        ("systemctl restart nginx && rm -rf /", False),
        ("systemctl restart nginx || reboot", False),
        ("systemctl restart nginx | sh", False),
        ("systemctl restart $(rm -rf /)", False),
        ("systemctl restart `reboot`", False),
        ("systemctl restart <(reboot)", False),
        ("systemctl restart nginx\nreboot", False),
        ("systemctl restart 'unbalanced", False),
        ("uptime; uptime", True),  # every simple command matches
    ],
)
def test_shell_patterns(command: str, allowed: bool) -> None:
    scope = UserScope.model_validate(RESTART_ONLY)
    assert shell_allowed(scope, command)[0] is allowed
    who = principal(**RESTART_ONLY)
    payload = {"command": command}
    if allowed:
        assert authorize(who, P.COMMAND_RUN, command_type="shell", command_payload=payload) == (
            Decision()
        )
    else:
        refused(
            "command_not_allowed", who, P.COMMAND_RUN, command_type="shell", command_payload=payload
        )


def test_command_deny_beats_command_allow() -> None:
    scope = UserScope(command_allow=["systemctl *"], command_deny=["systemctl stop *"])
    assert shell_allowed(scope, "systemctl restart nginx") == (True, "")
    allowed, reason = shell_allowed(scope, "systemctl stop nginx")
    assert not allowed and "systemctl stop *" in reason
    # deny patterns alone: anything else runs, a denied command anywhere on the line does not
    deny_only = UserScope(command_deny=["reboot"])
    assert shell_allowed(deny_only, "uptime")[0]
    assert not shell_allowed(deny_only, "uptime && reboot")[0]
    assert not shell_allowed(deny_only, "uptime; /sbin/reboot")[0]


def test_without_patterns_any_shell_text_is_left_to_the_role() -> None:
    assert shell_allowed(UserScope(), "echo $(date) `id`; ls && true") == (True, "")


def test_approval_required_asks_for_approval_of_commands_only() -> None:
    careful = principal(approval_required=True)
    assert authorize(careful, P.COMMAND_RUN, command_type="shell").needs_approval
    assert not authorize(careful, P.DEVICE_VIEW).needs_approval
    assert not authorize(principal(), P.COMMAND_RUN, command_type="shell").needs_approval


# ---- through the API -------------------------------------------------------------------------


def group_ids(server: LiveServer, tenant_id: uuid.UUID) -> dict[str, str]:
    """The tenant's groups, name -> id (a scope names groups by id), read past the filter."""

    async def read() -> dict[str, str]:
        async with standalone_session(server.settings.effective_database_url) as session:
            rows = await session.execute(
                select(Group.name, Group.id).where(Group.tenant_id == tenant_id)
            )
            return {name: str(gid) for name, gid in rows}

    found: dict[str, str] = run_async(read)
    return found


def test_a_scoped_user_sees_only_their_groups_devices(server: LiveServer, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    x, y = f"x-{uuid.uuid4().hex[:6]}", f"y-{uuid.uuid4().hex[:6]}"
    in_x = enroll(server, seeder.pin(tenant, group=x), hostname="in-x")["device_id"]
    in_y = enroll(server, seeder.pin(tenant, group=y), hostname="in-y")["device_id"]
    engineer = seeder.user(tenant, "ENGINEER")
    customer = seeder.user(tenant, "CUSTOMER")
    with login(server, tenant) as admin:
        set_scope(admin, engineer, {"groups": [group_ids(server, tenant.tenant_id)[x]]})
    with tenant_client(server, tenant.slug, **bearer(sign_in(server, tenant, engineer))) as api:
        listed = api.get("/api/v1/devices")
        assert listed.status_code == 200, listed.text
        assert [d["id"] for d in listed.json()] == [in_x], "the device list ignores the scope"
        assert api.get(f"/api/v1/devices/{in_x}").status_code == 200
        outside = api.get(f"/api/v1/devices/{in_y}")
        assert outside.status_code == 404, outside.text
        command = api.post(
            f"/api/v1/devices/{in_y}/commands",
            json={"type": "shell", "payload": {"command": "echo"}},
        )
        assert command.status_code == 404, command.text
        counts = api.get("/api/v1/devices/counts").json()
        assert counts["total"] == 1, counts
    with tenant_client(server, tenant.slug, **bearer(sign_in(server, tenant, customer))) as api:
        listed = api.get("/api/v1/devices")
        assert listed.status_code == 200 and listed.json() == [], listed.text
        assert api.get(f"/api/v1/devices/{in_x}").status_code == 404
