"""The command engine's console: composer, jobs, history, approvals, schedules, device tags.

The real app (with its lifespan: job runner, hub) on SQLite and PostgreSQL, a browser-like
client per user; what the pages did is read back from the database."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from steward.protocol import CommandStatus
from steward.server.accounts.models import Role, User
from steward.server.audit.models import AuditEvent
from steward.server.commands.models import Command
from steward.server.jobs.models import DeviceTag, Job, Schedule
from steward.server.runtime import Runtime
from tests.web.support import World, csrf_token, htmx, make_user

ENGINEER = "engineer@acme.test"


async def _engineer_needing_approval(runtime: Runtime, world: World) -> None:
    await make_user(runtime, world.acme, ENGINEER, Role.ENGINEER)
    async with runtime.system_sessions() as session:
        await session.execute(
            update(User).where(User.email == ENGINEER).values(scope={"approval_required": True})
        )
        await session.commit()


async def _token(http: httpx.AsyncClient, path: str = "/run") -> str:
    return csrf_token((await http.get(path)).text)


def _shell(token: str, command: str, *devices: uuid.UUID, **extra: Any) -> dict[str, Any]:
    return {"csrf_token": token, "type": "shell", "p_command": command,
            "devices": [str(d) for d in devices], "max_concurrency": "100%", **extra}  # fmt: skip


async def _rows(runtime: Runtime, model: Any) -> list[Any]:
    async with runtime.system_sessions() as session:
        return list(await session.scalars(select(model)))


async def _submit(http: httpx.AsyncClient, data: dict[str, Any]) -> uuid.UUID:
    response = await http.post("/run", data=data)
    assert response.status_code == 303, response.text[:2000]
    match = re.fullmatch(r"/jobs/([0-9a-f-]{36})", response.headers["location"])
    assert match, response.headers["location"]
    return uuid.UUID(match.group(1))


# ---- pages and roles -------------------------------------------------------------------------


async def test_each_page_renders_for_an_admin(admin: httpx.AsyncClient, world: World) -> None:
    for path in ("/run", "/jobs", "/commands", "/schedules", "/approvals"):
        response = await admin.get(path)
        assert response.status_code == 200, path
    page = await admin.get("/run")
    for link in ('href="/run"', 'href="/jobs"', 'href="/commands"', 'href="/schedules"',
                 'href="/scripts"', 'href="/settings/command-policy"'):  # fmt: skip
        assert link in page.text, link
    assert "lab-pc-01" in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "other-secret-host" not in page.text
    prefilled = await admin.get(f"/run?device={world.device_id}")
    assert re.search(rf'<option value="{world.device_id}" selected>lab-pc-01', prefilled.text)
    device = await admin.get(f"/devices/{world.device_id}")
    assert f'href="/run?device={world.device_id}"' in device.text


async def test_korean_composer(admin: httpx.AsyncClient, world: World) -> None:
    page = await admin.get("/run?lang=ko")
    assert page.status_code == 200 and "명령 실행하기" in page.text


async def test_a_viewer_sees_jobs_and_history_but_not_the_composer(
    viewer: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    for path in ("/jobs", "/commands", "/schedules"):
        assert (await viewer.get(path)).status_code == 200, path
    jobs = await viewer.get("/jobs")
    assert 'href="/run"' not in jobs.text and 'href="/jobs"' in jobs.text
    assert (await viewer.get("/run")).status_code == 403
    assert (await viewer.get("/approvals")).status_code == 403
    token = csrf_token(jobs.text)
    refused = await viewer.post("/run", data=_shell(token, "id", world.device_id))
    assert refused.status_code == 403
    preview = await viewer.post("/run/preview", data=_shell(token, "id"), headers=htmx(token))
    assert preview.status_code == 403
    assert await _rows(runtime, Job) == []


# ---- the composer ----------------------------------------------------------------------------


async def _preview(http: httpx.AsyncClient, token: str, **data: Any) -> str:
    response = await http.post(
        "/run/preview", data={"type": "shell", "p_command": "hostname", **data}, headers=htmx(token)
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_the_preview_counts_the_target_and_shows_the_risk(
    admin: httpx.AsyncClient, world: World
) -> None:
    token = await _token(admin)
    one = await _preview(admin, token, devices=[str(world.device_id)])
    assert 'data-count="1" data-online="1"' in one and "1 device, 1 online" in one
    everything = await _preview(admin, token, all="1")
    assert "3 devices, 2 online" in everything and "other-secret-host" not in everything
    several = await _preview(
        admin, token, devices=[str(world.device_id), str(world.script_device_id)]
    )
    assert "2 devices, 1 online" in several
    other = await _preview(admin, token, devices=[str(world.other_device_id)])
    assert "0 devices, 0 online" in other
    nothing = await _preview(admin, token)
    assert "Choose devices, groups, tags or all devices." in nothing
    assert "Low risk" in one and "Runs without waiting for approval." in one
    risky = await _preview(admin, token, all="1", p_command="rm -rf /tmp/x")
    assert 'data-risk="high"' in risky and "High risk" in risky
    broken = await _preview(admin, token, all="1", p_command="")
    assert 'id="payload-problem"' in broken and "High risk" not in broken


async def test_the_preview_follows_tags_and_groups(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    device_page = await admin.get(f"/devices/{world.device_id}")
    token = csrf_token(device_page.text)
    saved = await admin.post(
        f"/devices/{world.device_id}/tags", data={"tags": "Lab, kiosk"}, headers=htmx(token)
    )
    assert saved.status_code == 200 and "lab" in saved.text and "kiosk" in saved.text
    assert "3 devices" in await _preview(admin, token, groups=["all"])
    tagged = await _preview(admin, token, tags="lab")
    assert "1 device, 1 online" in tagged and "lab-pc-01" in tagged
    assert "0 devices" in await _preview(admin, token, tags="nothing-has-this")


async def test_the_composer_asks_for_an_approval_before_submitting(
    browser: Any, world: World, runtime: Runtime
) -> None:
    await _engineer_needing_approval(runtime, world)
    engineer = await browser(ENGINEER)
    text = await _preview(engineer, await _token(engineer), all="1")
    assert "Needs 1 approval before it runs." in text


async def test_submitting_the_composer_creates_a_job(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    job_id = await _submit(
        admin,
        _shell(token, "echo <job>", world.device_id, world.script_device_id,
               p_interpreter="bash", max_concurrency="1", error_threshold="50%",
               timeout_s="30", job_name="Say hello"),
    )  # fmt: skip
    [job] = await _rows(runtime, Job)
    assert job.id == job_id and job.name == "Say hello" and job.total == 2
    assert job.payload == {"command": "echo <job>", "interpreter": "bash"}
    assert (job.max_concurrency, job.error_threshold, job.timeout_s) == ("1", "50%", 30.0)
    commands = await _rows(runtime, Command)
    assert {c.device_id for c in commands} == {world.device_id, world.script_device_id}
    assert all(c.job_id == job_id and c.payload == job.payload for c in commands)
    events = [e.action for e in await _rows(runtime, AuditEvent)]
    assert "job.submitted" in events
    page = await admin.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert "Say hello" in page.text and "echo &lt;job&gt;" in page.text
    assert "lab-pc-01" in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    for command in commands:
        assert f'href="/commands/{command.id}"' in page.text
    assert 'hx-get="/jobs/' in page.text and 'hx-trigger="every 2s"' in page.text
    listed = await admin.get("/jobs")
    assert f'href="/jobs/{job_id}"' in listed.text
    assert f'href="/jobs/{job_id}"' not in (await admin.get("/jobs?status=succeeded")).text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"p_command": ""}, "Check the values"),
        ({"devices": []}, "Choose devices, groups, tags or all devices."),
        ({"max_concurrency": "0"}, "Check the values"),
        ({"error_threshold": "150%"}, "Check the values"),
        ({"timeout_s": "-5"}, "Check the values"),
        ({"type": "package.install", "p_names": "bad name;rm"}, "Check the values"),
        ({"type": "process.kill"}, "Check the values"),
        ({"when": "schedule", "cron": "every day"}, "Check the values"),
        ({"when": "at", "run_at": "tomorrow"}, "Check the values"),
    ],
)
async def test_bad_composer_input_is_refused(
    admin: httpx.AsyncClient, world: World, runtime: Runtime, changes: dict[str, Any],
    message: str,
) -> None:  # fmt: skip
    token = await _token(admin)
    response = await admin.post("/run", data=_shell(token, "id", world.device_id) | changes)
    assert response.status_code == 422, response.text[:500]
    assert message in response.text and 'id="composer-error"' in response.text
    assert await _rows(runtime, Job) == [] and await _rows(runtime, Schedule) == []


async def test_another_tenants_device_is_not_a_target(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    response = await admin.post("/run", data=_shell(token, "id", world.other_device_id))
    assert response.status_code == 422 and "no device you can reach" in response.text
    assert await _rows(runtime, Command) == []


async def test_other_command_types_and_a_start_time(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    fields = await admin.post("/run/fields", data={"type": "package.install"}, headers=htmx(token))
    assert 'name="p_names"' in fields.text and 'name="p_manager"' in fields.text
    await _submit(
        admin,
        {"csrf_token": token, "type": "package.install", "p_names": "curl, jq",
         "p_manager": "apt", "p_dry_run": "1", "devices": [str(world.device_id)],
         "when": "at", "run_at": "2099-01-02T03:04"},
    )  # fmt: skip
    [job] = await _rows(runtime, Job)
    assert job.payload == {"names": ["curl", "jq"], "manager": "apt", "dry_run": True}
    assert job.status == "scheduled"
    assert job.run_at is not None and job.run_at.isoformat().startswith("2099-01-01T18:04")  # Seoul


async def test_a_script_with_typed_parameters(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    made = await admin.post(
        "/scripts",
        data={"csrf_token": token, "name": "greet", "interpreter": "sh",
              "body": 'echo "$STEWARD_PARAM_WHO"', "param_0_name": "who",
              "param_0_type": "string", "param_0_required": "1", "param_0_pass_as": "env"},
    )  # fmt: skip
    assert made.status_code == 303, made.text[:500]
    script_id = made.headers["location"].split("/")[2].split("?")[0]
    fields = await admin.post(
        "/run/fields", data={"type": "script", "p_script_id": script_id}, headers=htmx(token)
    )
    assert 'name="param_who"' in fields.text
    missing = await admin.post(
        "/run", data={"csrf_token": token, "type": "script", "p_script_id": script_id,
                      "devices": [str(world.device_id)]},
    )  # fmt: skip
    assert missing.status_code == 422 and "a value is required" in missing.text
    await _submit(
        admin,
        {"csrf_token": token, "type": "script", "p_script_id": script_id,
         "param_who": "$(reboot)", "devices": [str(world.device_id)]},
    )  # fmt: skip
    [job] = await _rows(runtime, Job)
    assert job.payload["env"] == {"STEWARD_PARAM_WHO": "$(reboot)"}
    assert job.payload["body"] == 'echo "$STEWARD_PARAM_WHO"'


# ---- one job ---------------------------------------------------------------------------------


async def test_another_tenants_job_is_not_found(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    job_id = await _submit(admin, _shell(token, "id", world.device_id))
    async with runtime.system_sessions() as session:  # the job now belongs to `other`
        await session.execute(update(Job).where(Job.id == job_id).values(tenant_id=world.other.id))
        await session.execute(
            update(Command)
            .where(Command.job_id == job_id)
            .values(tenant_id=world.other.id, device_id=world.other_device_id)
        )
        await session.commit()
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/progress", f"/jobs/{uuid.uuid4()}"):
        assert (await admin.get(path)).status_code == 404, path
    for action in ("cancel", "approve", "deny"):
        response = await admin.post(f"/jobs/{job_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 404, action
    assert f"/jobs/{job_id}" not in (await admin.get("/jobs")).text
    [job] = await _rows(runtime, Job)
    assert job.status == "running"


async def test_cancel_a_job_from_its_page(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    job_id = await _submit(
        admin, _shell(token, "sleep 60", world.device_id, world.script_device_id)
    )
    page = await admin.get(f"/jobs/{job_id}")
    assert 'id="cancel-job"' in page.text
    cancelled = await admin.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/jobs/{job_id}"
    [job] = await _rows(runtime, Job)
    assert job.status == "cancelled"
    assert {c.status for c in await _rows(runtime, Command)} == {CommandStatus.CANCELLED}
    after = await admin.get(f"/jobs/{job_id}/progress")
    assert "Cancelled" in after.text and "hx-trigger" not in after.text  # final: no polling
    assert 'id="cancel-job"' not in (await admin.get(f"/jobs/{job_id}")).text
    again = await admin.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert again.status_code == 303
    assert "job.cancelled" in [e.action for e in await _rows(runtime, AuditEvent)]


async def test_a_viewer_cannot_cancel(
    admin: httpx.AsyncClient, browser: Any, world: World, runtime: Runtime
) -> None:
    job_id = await _submit(admin, _shell(await _token(admin), "id", world.device_id))
    viewer = await browser("viewer@acme.test")
    page = await viewer.get(f"/jobs/{job_id}")
    assert page.status_code == 200 and 'id="cancel-job"' not in page.text
    refused = await viewer.post(
        f"/jobs/{job_id}/cancel", data={"csrf_token": csrf_token(page.text)}
    )
    assert refused.status_code == 403
    [job] = await _rows(runtime, Job)
    assert job.status == "running"


# ---- approvals -------------------------------------------------------------------------------


async def test_a_second_user_approves_a_job_with_a_comment_from_the_inbox(
    browser: Any, world: World, runtime: Runtime
) -> None:
    await _engineer_needing_approval(runtime, world)
    engineer = await browser(ENGINEER)
    token = await _token(engineer)
    job_id = await _submit(engineer, _shell(token, "echo approve me", world.device_id))
    [job] = await _rows(runtime, Job)
    assert job.status == "pending_approval"

    own = await engineer.get(f"/jobs/{job_id}")
    assert "Waiting for approval" in own.text and 'id="approve-job"' not in own.text
    assert 'hx-trigger="every 2s"' not in own.text  # a comment being typed is not wiped
    inbox = await engineer.get("/approvals")
    assert str(job_id) not in inbox.text
    refused = await engineer.post(f"/jobs/{job_id}/approve", data={"csrf_token": token})
    assert refused.status_code == 403

    admin = await browser("admin@acme.test")
    inbox = await admin.get("/approvals")
    assert f'data-approve="{job_id}"' in inbox.text
    approved = await admin.post(
        f"/jobs/{job_id}/approve",
        data={"csrf_token": csrf_token(inbox.text), "comment": "ok <for> today", "back": "inbox"},
    )
    assert approved.status_code == 303 and approved.headers["location"] == "/approvals"
    [job] = await _rows(runtime, Job)
    assert job.status == "running"
    assert str(job_id) not in (await admin.get("/approvals")).text
    page = await admin.get(f"/jobs/{job_id}")
    assert "ok &lt;for&gt; today" in page.text and "admin@acme.test" in page.text
    events = [e.action for e in await _rows(runtime, AuditEvent)]
    assert "job.approved" in events


async def test_a_single_command_is_denied_with_a_comment_from_the_inbox(
    browser: Any, world: World, runtime: Runtime
) -> None:
    await _engineer_needing_approval(runtime, world)
    engineer = await browser(ENGINEER)
    device_page = await engineer.get(f"/devices/{world.device_id}")
    created = await engineer.post(
        f"/devices/{world.device_id}/commands",
        data={"command": "echo single", "csrf_token": csrf_token(device_page.text)},
    )
    assert created.status_code == 303
    command_url = created.headers["location"]
    own = await engineer.get(command_url)
    assert 'id="approve-with-comment"' not in own.text

    admin = await browser("admin@acme.test")
    page = await admin.get(command_url)
    assert 'id="approve-with-comment"' in page.text
    inbox = await admin.get("/approvals")
    command_id = command_url.rsplit("/", 1)[1]
    assert f'data-deny="{command_id}"' in inbox.text
    denied = await admin.post(
        f"{command_url}/deny",
        data={"csrf_token": csrf_token(inbox.text), "comment": "not today", "back": "inbox"},
    )
    assert denied.status_code == 303 and denied.headers["location"] == "/approvals"
    shown = await admin.get(command_url)
    assert "not today" in shown.text and "Denied" in shown.text
    assert 'id="transitions"' in shown.text


# ---- history and the command page ------------------------------------------------------------


async def test_command_history_filters_and_pages(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    await _submit(admin, _shell(token, "echo first", world.device_id))
    await _submit(admin, _shell(token, "echo second", world.script_device_id))
    everything = await admin.get("/commands")
    assert "echo first" in everything.text and "echo second" in everything.text
    by_device = await admin.get(f"/commands?device={world.script_device_id}")
    assert "echo second" in by_device.text and "echo first" not in by_device.text
    assert "No commands match." in (await admin.get("/commands?status=succeeded")).text
    assert "No commands match." in (await admin.get("/commands?type=message")).text
    assert "No commands match." in (await admin.get("/commands?user=nobody@acme.test")).text
    assert "echo first" in (await admin.get("/commands?user=admin@acme.test")).text
    assert "No commands match." in (await admin.get("/commands?until=2000-01-01")).text
    assert "echo first" in (await admin.get("/commands?since=2000-01-01")).text
    old = await admin.get("/commands?before=2000-01-01T00:00:00%2B00:00")
    assert "No commands match." in old.text
    for junk in ("?device=nope", "?status=nope", "?since=nope", "?before=nope"):
        assert (await admin.get(f"/commands{junk}")).status_code == 200, junk


async def test_history_pages_by_before(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    await _submit(admin, _shell(token, "echo page", world.device_id))
    async with runtime.system_sessions() as session:
        [command] = list(await session.scalars(select(Command)))
        for number in range(1, 61):  # one a minute earlier than the other
            copy = {c.name: getattr(command, c.name) for c in Command.__table__.columns}
            earlier = command.created_at - timedelta(minutes=number)
            session.add(
                Command(**copy | {"id": uuid.uuid4(), "job_id": None, "created_at": earlier})
            )
        await session.commit()
    first = await admin.get("/commands")
    assert first.text.count("<tr data-command=") == 50
    older = re.search(r'href="(/commands\?[^"]+)" id="older"', first.text)
    assert older, "no link to older commands"
    second = await admin.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count("<tr data-command=") == 11 and 'id="older"' not in second.text
    assert second.status_code == 200 and 'id="first-page"' in second.text


async def test_history_pages_through_commands_that_share_one_time(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    """A job's commands are created at one instant: the next page goes on by id, skipping
    none of them and showing none twice."""
    token = await _token(admin)
    await _submit(admin, _shell(token, "echo same time", world.device_id))
    async with runtime.system_sessions() as session:
        [command] = list(await session.scalars(select(Command)))
        for _ in range(60):
            copy = {c.name: getattr(command, c.name) for c in Command.__table__.columns}
            session.add(Command(**copy | {"id": uuid.uuid4(), "job_id": None}))
        await session.commit()
    first = await admin.get("/commands")
    older = re.search(r'href="(/commands\?[^"]+)" id="older"', first.text)
    assert older and "before_id=" in older.group(1), "no link to older commands"
    second = await admin.get(older.group(1).replace("&amp;", "&"))
    shown = [re.findall(r'<tr data-command="([0-9a-f-]{36})"', page.text)
             for page in (first, second)]  # fmt: skip
    assert [len(ids) for ids in shown] == [50, 11]
    assert len(set(shown[0]) | set(shown[1])) == 61


async def test_the_command_page_shows_history_and_cancels(
    admin: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    device_page = await admin.get(f"/devices/{world.device_id}")
    token = csrf_token(device_page.text)
    created = await admin.post(
        f"/devices/{world.device_id}/commands", data={"command": "sleep 30", "csrf_token": token}
    )
    command_url = created.headers["location"]
    page = await admin.get(command_url)
    assert 'id="transitions"' in page.text and 'data-status="queued"' in page.text
    assert 'id="cancel-command"' in page.text
    cancelled = await admin.post(f"{command_url}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    [command] = await _rows(runtime, Command)
    assert command.status == CommandStatus.CANCELLED
    after = await admin.get(command_url)
    assert 'data-status="cancelled"' in after.text and 'id="cancel-command"' not in after.text
    other = await admin.post(f"/commands/{uuid.uuid4()}/cancel", data={"csrf_token": token})
    assert other.status_code == 404


# ---- schedules -------------------------------------------------------------------------------


async def test_schedules_are_made_in_the_composer_and_changed_by_their_owner(
    admin: httpx.AsyncClient, browser: Any, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    made = await admin.post(
        "/run",
        data=_shell(token, "echo nightly", world.device_id, when="schedule",
                    cron="0 3 * * *", job_name="Nightly"),
    )  # fmt: skip
    assert made.status_code == 303 and made.headers["location"] == "/schedules?done=created"
    [schedule] = await _rows(runtime, Schedule)
    assert schedule.cron == "0 3 * * *" and schedule.enabled and schedule.name == "Nightly"
    assert await _rows(runtime, Job) == []
    listed = await admin.get("/schedules")
    assert "Nightly" in listed.text and "03:00:00" in listed.text  # next run, Seoul time

    await make_user(runtime, world.acme, ENGINEER, Role.ENGINEER)
    engineer = await browser(ENGINEER)
    theirs = await engineer.get("/schedules")
    assert "Nightly" in theirs.text and "data-delete-schedule" not in theirs.text
    refused = await engineer.post(
        f"/schedules/{schedule.id}/delete", data={"csrf_token": csrf_token(theirs.text)}
    )
    assert refused.headers["location"] == "/schedules?done=not_owner"
    assert len(await _rows(runtime, Schedule)) == 1

    disabled = await admin.post(
        f"/schedules/{schedule.id}/enabled", data={"csrf_token": token, "enabled": "0"}
    )
    assert disabled.headers["location"] == "/schedules?done=disabled"
    [schedule] = await _rows(runtime, Schedule)
    assert not schedule.enabled and schedule.next_run_at is None
    deleted = await admin.post(f"/schedules/{schedule.id}/delete", data={"csrf_token": token})
    assert deleted.headers["location"] == "/schedules?done=deleted"
    assert await _rows(runtime, Schedule) == []
    missing = await admin.post(f"/schedules/{uuid.uuid4()}/delete", data={"csrf_token": token})
    assert missing.status_code == 404


# ---- device tags -----------------------------------------------------------------------------


async def test_device_tags(
    admin: httpx.AsyncClient, browser: Any, world: World, runtime: Runtime
) -> None:
    token = await _token(admin)
    card = await admin.get(f"/devices/{world.device_id}/tags")
    assert "No tags." in card.text and 'name="tags"' in card.text
    bad = await admin.post(
        f"/devices/{world.device_id}/tags", data={"tags": "ok, <bad>"}, headers=htmx(token)
    )
    assert bad.status_code == 422 and "&lt;bad&gt;" in bad.text
    saved = await admin.post(
        f"/devices/{world.device_id}/tags", data={"tags": "b a a", "csrf_token": token}
    )
    assert saved.status_code == 303
    assert sorted(t.tag for t in await _rows(runtime, DeviceTag)) == ["a", "b"]
    assert "device.tags" in [e.action for e in await _rows(runtime, AuditEvent)]
    other = await admin.post(
        f"/devices/{world.other_device_id}/tags", data={"tags": "x", "csrf_token": token}
    )
    assert other.status_code == 404
    assert (await admin.get(f"/devices/{world.other_device_id}/tags")).status_code == 404

    viewer = await browser("viewer@acme.test")
    shown = await viewer.get(f"/devices/{world.device_id}/tags")
    assert shown.status_code == 200 and "a" in shown.text and 'name="tags"' not in shown.text
    refused = await viewer.post(
        f"/devices/{world.device_id}/tags",
        data={"tags": "", "csrf_token": csrf_token((await viewer.get("/jobs")).text)},
    )
    assert refused.status_code == 403
    assert len(await _rows(runtime, DeviceTag)) == 2
