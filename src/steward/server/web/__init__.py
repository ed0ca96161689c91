"""The web console (Jinja2 + htmx). `mount_console(app)` adds its pages and static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from steward.server.web import (
    account,
    account_mfa,
    audit,
    auth,
    command_policy,
    commands,
    devices,
    enroll,
    file_settings,
    files,
    groups,
    invite,
    jobs,
    organisation,
    platform,
    scripts,
    security_settings,
    terminal,
    terminal_settings,
    users,
)
from steward.server.web.templating import Templates

STATIC_DIR = Path(__file__).parent / "static"


def mount_console(app: FastAPI) -> None:
    # Compiles every catalogue and template environment now: a broken .po fails at startup.
    app.state.console_templates = Templates()
    app.include_router(auth.router)
    app.include_router(invite.router)
    app.include_router(enroll.router)  # before devices: /devices/enroll is not a device id
    app.include_router(files.router)
    app.include_router(files.script_router)
    app.include_router(terminal.router)  # before devices: /devices/{id}/terminal
    app.include_router(devices.router)
    app.include_router(devices.data_router)
    app.include_router(commands.router)
    app.include_router(jobs.router)  # jobs, composer, schedules, device tags
    app.include_router(groups.router)
    app.include_router(audit.router)
    app.include_router(organisation.router)
    app.include_router(security_settings.router)
    app.include_router(command_policy.router)
    app.include_router(terminal_settings.router)
    app.include_router(file_settings.router)
    app.include_router(scripts.router)
    app.include_router(account.router)
    app.include_router(account_mfa.router)
    app.include_router(users.router)
    app.include_router(platform.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
