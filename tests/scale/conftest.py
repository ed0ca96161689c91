"""A server whose requests can be counted in SQL statements (see `counter.py`), on a fresh
database per module, and sign-ins for its API and its console."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.scale.counter import QueryCounter
from tests.support import Databases, LiveServer, SeededTenant, make_settings, tenant_client

_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def counted(
    databases: Databases, backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, QueryCounter]]:
    url = databases.create(backend)
    # A tenant looked up once stays cached for the module: the first request and a later one
    # must not differ by that lookup.
    settings = make_settings(url, tmp_path_factory.mktemp("data"), tenant_cache_ttl_s=3600.0)
    server = LiveServer(settings)
    counter = QueryCounter()
    counter.install(server)
    server.start()
    counter.attach(server)
    yield server, counter
    counter.detach()
    server.stop()


def console(server: LiveServer, tenant: SeededTenant) -> httpx.Client:
    """A browser-like client signed in to the tenant's console (session cookie)."""
    client = tenant_client(server, tenant.slug)
    form = client.get("/login")
    match = _CSRF_INPUT.search(form.text)
    assert match, "the sign-in page has no CSRF field"
    signed_in = client.post(
        "/login",
        data={"email": tenant.admin_email, "password": tenant.password,
              "csrf_token": match.group(1)},
    )  # fmt: skip
    assert signed_in.status_code in (200, 303), signed_in.text[:300]
    return client
