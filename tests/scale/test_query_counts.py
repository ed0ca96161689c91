"""No N+1 queries: every list API and console list page makes the same number of SQL statements
for a tenant with 5 devices as for one with 60 (and 12 times the jobs, commands, approvals,
users, schedules and audit events), and stays under a stated ceiling.

Each request is measured twice per size and the smaller count kept: a request that happens to
open a new pooled connection pays that connection's set-up once, which is not the list's cost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from steward.server.db.engine import create_engine, create_session_factory
from tests.scale.conftest import console
from tests.scale.counter import Measured, QueryCounter
from tests.scale.fleet import Fleet, add_activity, add_audit_events, add_devices
from tests.support import LiveServer, Seeder, login, run_async

SMALL = {"devices": 5, "jobs": 2, "waiting": 2, "users": 2, "schedules": 1, "audit": 5}
GROWTH = {"devices": 55, "jobs": 10, "waiting": 8, "users": 10, "schedules": 6, "audit": 55}

# name -> (client, URL, ceiling). `{job}` is the newest finished job of the size measured (its
# devices grow from 5 to 55). The ceilings leave room for authentication (session, user,
# tenant), PostgreSQL's per-transaction tenant setting, and a page's navigation badges.
ENDPOINTS: dict[str, tuple[str, str, int]] = {
    "api devices": ("api", "/api/v1/devices", 7),
    "api devices filtered": ("api", "/api/v1/devices?online=true&group=lab&sort=-last_seen", 7),
    "api devices searched": ("api", "/api/v1/devices?q=host-0&sort=-hostname&offset=2", 7),
    "api device counts": ("api", "/api/v1/devices/counts", 7),
    "api commands": ("api", "/api/v1/commands", 7),
    "api jobs": ("api", "/api/v1/jobs", 7),
    "api job": ("api", "/api/v1/jobs/{job}", 11),
    "api approvals": ("api", "/api/v1/approvals", 7),
    "api approvals jobs": ("api", "/api/v1/approvals/jobs", 7),
    "api audit events": ("api", "/api/v1/audit/events", 7),
    "api users": ("api", "/api/v1/users", 7),
    "api schedules": ("api", "/api/v1/schedules", 7),
    "api tags": ("api", "/api/v1/tags", 7),
    "page devices": ("web", "/devices", 9),
    "page devices table": ("web", "/devices/table?page=1", 9),
    "page devices sorted": ("web", "/devices?sort=-last_seen&q=host", 9),
    "page jobs": ("web", "/jobs", 9),
    "page job": ("web", "/jobs/{job}", 11),
    "page job progress": ("web", "/jobs/{job}/progress", 11),
    "page commands": ("web", "/commands", 9),
    "page approvals": ("web", "/approvals", 9),
    "page audit": ("web", "/audit", 9),
    "page users": ("web", "/users", 9),
    "page schedules": ("web", "/schedules", 9),
    "page groups": ("web", "/groups", 9),
}


@dataclass
class Counts:
    small: dict[str, Measured] = field(default_factory=dict)
    large: dict[str, Measured] = field(default_factory=dict)


def _grow(url: str, fleet: Fleet, size: dict[str, int]) -> list[uuid.UUID]:
    """Add `size` worth of devices and activity to the fleet's tenant; the new jobs' ids."""

    async def work() -> list[uuid.UUID]:
        engine = create_engine(url)
        try:
            system = create_session_factory(engine, system=True)
            async with system() as session:
                devices = await add_devices(session, fleet, size["devices"])
                jobs = await add_activity(
                    session, fleet, devices, jobs=size["jobs"], waiting=size["waiting"],
                    users=size["users"], schedules=size["schedules"],
                )  # fmt: skip
                await session.commit()
            await add_audit_events(system, fleet, size["audit"])
            return jobs
        finally:
            await engine.dispose()

    result: list[uuid.UUID] = run_async(work)
    return result


def _measure_all(
    counter: QueryCounter, clients: dict[str, httpx.Client], job: uuid.UUID
) -> dict[str, Measured]:
    found = {}
    for name, (client, url, _ceiling) in ENDPOINTS.items():
        target = url.format(job=job)
        runs = [counter.get(clients[client], target) for _ in range(2)]
        found[name] = min(runs, key=lambda m: m.count)
    return found


@pytest.fixture(scope="module")
def counts(counted: tuple[LiveServer, QueryCounter]) -> Iterator[Counts]:
    server, counter = counted
    tenant = Seeder(server.settings).tenant()
    fleet = Fleet(tenant.tenant_id)
    url = server.settings.effective_database_url
    api, web = login(server, tenant), console(server, tenant)
    try:
        clients = {"api": api, "web": web}
        jobs = _grow(url, fleet, SMALL)
        measured = Counts(small=_measure_all(counter, clients, jobs[0]))
        jobs = _grow(url, fleet, GROWTH)
        measured.large = _measure_all(counter, clients, jobs[0])
        yield measured
    finally:
        api.close()
        web.close()


def _listing(measured: Measured) -> str:
    return "\n".join(
        f"  {n}. {s.split()[0]} {s[:160]!r}" for n, s in enumerate(measured.statements)
    )


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_statements_do_not_grow_with_the_fleet(name: str, counts: Counts) -> None:
    small, large = counts.small[name], counts.large[name]
    ceiling = ENDPOINTS[name][2]
    print(f"{name}: {small.count} statements at 5 devices, {large.count} at 60")
    assert large.count == small.count, (
        f"{name}: {small.count} statements for 5 devices but {large.count} for 60 (N+1?)\n"
        f"at 60:\n{_listing(large)}"
    )
    assert large.count <= ceiling, f"{name}: {large.count} > {ceiling}\n{_listing(large)}"


def _rows(measured: Measured, marker: str) -> int:
    return measured.response.text.count(marker)


CHECKS: dict[str, Callable[[Measured], int]] = {
    # the lists did grow: the equal counts above are not two empty pages
    "api devices": lambda m: len(m.response.json()),
    "api jobs": lambda m: len(m.response.json()),
    "api job": lambda m: len(m.response.json()["commands"]),
    "api approvals": lambda m: len(m.response.json()),
    "api users": lambda m: len(m.response.json()),
    "page job": lambda m: _rows(m, "data-command="),
    "page approvals": lambda m: _rows(m, "/approve"),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_the_lists_measured_grew(name: str, counts: Counts) -> None:
    small, large = CHECKS[name](counts.small[name]), CHECKS[name](counts.large[name])
    assert large > small > 0, f"{name}: {small} rows at 5 devices, {large} at 60"
