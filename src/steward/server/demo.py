"""`steward demo` (what `make run` starts): a ready-to-use installation on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.panel import Panel

from steward.server.settings import Settings

DEMO_TENANT = "demo"
DEMO_ADMIN = "admin@demo.example"
_console = Console()


def _agent_command() -> list[str]:
    found = shutil.which("steward-agent", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "steward.agent.cli"]


async def _seed(settings: Settings) -> str:
    """Create the demo tenant and admin once; return the admin's password."""
    from steward.server.accounts.models import Role
    from steward.server.accounts.service import create_user
    from steward.server.db.engine import standalone_session
    from steward.server.errors import NotFound
    from steward.server.tenancy.service import create_tenant, get_tenant_by_slug

    password_file = settings.data_dir / "demo-admin-password"
    async with standalone_session(settings.effective_database_url) as session:
        try:
            await get_tenant_by_slug(session, DEMO_TENANT)
        except NotFound:
            pass
        else:
            if password_file.exists():
                return password_file.read_text().strip()
            raise RuntimeError(
                f"tenant {DEMO_TENANT!r} exists but {password_file} is missing; "
                "remove the data directory to start over"
            )
        tenant = await create_tenant(session, DEMO_TENANT, "Demo", timezone="Asia/Seoul")
        password = secrets.token_urlsafe(12)
        await create_user(session, tenant, DEMO_ADMIN, password, Role.ADMIN)
        # Kept before the commit: a crash in between leaves no admin without its password.
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password)
        await session.commit()
    return password


async def _new_pin(settings: Settings) -> str:
    from steward.server.db.engine import standalone_session
    from steward.server.devices.enrollment import create_pin
    from steward.server.tenancy.service import get_tenant_by_slug

    async with standalone_session(settings.effective_database_url) as session:
        tenant = await get_tenant_by_slug(session, DEMO_TENANT)
        pin, _row, _group = await create_pin(
            session,
            settings.effective_secret_key,
            tenant,
            group_name=None,
            ttl_s=120,
            created_by="demo",
        )
        await session.commit()
        return pin


async def _start_agent(settings: Settings, server_url: str) -> asyncio.subprocess.Process:
    state_dir = settings.data_dir / "agent"
    state_file = state_dir / "state.json"
    if not state_file.exists() or server_url not in state_file.read_text():
        pin = await _new_pin(settings)
        enroll = await asyncio.create_subprocess_exec(
            *_agent_command(),
            "enroll",
            "--server",
            server_url,
            "--pin",
            pin,
            "--state-dir",
            str(state_dir),
        )
        if await enroll.wait() != 0:
            raise RuntimeError("the local agent could not enroll")
    return await asyncio.create_subprocess_exec(
        *_agent_command(), "run", "--state-dir", str(state_dir), start_new_session=True
    )


async def _main(settings: Settings, host: str, port: int, with_agent: bool) -> int:
    from steward.cli import configure_logging, uvicorn_options
    from steward.server.app import create_app
    from steward.server.db.migrate import upgrade
    from steward.server.tenancy.hosts import tenant_origin

    configure_logging()
    upgrade(settings.effective_database_url)
    password = await _seed(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **uvicorn_options(host, port)))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            return 1
        await asyncio.sleep(0.05)
    url = f"http://{'localhost' if host in {'127.0.0.1', '0.0.0.0'} else host}:{port}"
    # Browsers resolve every *.localhost name to this machine; other base domains need DNS.
    console = tenant_origin(f"x:{port}", "http", DEMO_TENANT, settings.base_domain)
    agent = None
    try:
        if with_agent:
            agent = await _start_agent(settings, url)
        _console.print(
            Panel.fit(
                f"Console:  [bold]{console}/[/bold]\n"
                f"Tenant:   [bold]{DEMO_TENANT}[/bold]\n"
                f"E-mail:   [bold]{DEMO_ADMIN}[/bold]\n"
                f"Password: [bold]{password}[/bold]\n"
                f"Data:     {settings.data_dir}\n\nCtrl-C stops the server and the agent.",
                title="Steward is running",
            )
        )
        await serving
    finally:
        if agent is not None and agent.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                agent.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(agent.wait(), 10)
            except TimeoutError:
                agent.kill()
        if not serving.done():
            server.should_exit = True
            await serving
    return 0


def run_demo(settings: Settings, host: str, port: int, *, with_agent: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_main(settings, host, port, with_agent))
