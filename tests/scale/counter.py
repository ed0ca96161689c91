"""Counting the SQL statements one HTTP request makes on a running server.

The server also works in the background (status flushes, sweeps, the leader check), on the same
engine. So statements are counted only in the context of a marked request: an outer ASGI layer
sets a context variable for requests that carry `X-Test-Request`, and the engine's
`before_cursor_execute` listener records a statement only where that variable is set (the
session's greenlet runs in the request task's context; background tasks have their own)."""

from __future__ import annotations

import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import LiveServer

HEADER = "X-Test-Request"
Executed = tuple[str, Any]  # a statement as the driver got it, and its parameters
_recording: ContextVar[list[Executed] | None] = ContextVar("steward_test_sql", default=None)


@dataclass(frozen=True)
class Measured:
    response: httpx.Response
    executed: list[Executed]
    seconds: float

    @property
    def statements(self) -> list[str]:
        return [statement for statement, _ in self.executed]

    @property
    def count(self) -> int:
        return len(self.executed)


class QueryCounter:
    """Install on a `LiveServer` before it starts (`install`), attach to its engine once it
    runs (`attach`), then `get` pages and API answers with the statements each one ran."""

    def __init__(self) -> None:
        self._done: dict[str, list[Executed]] = {}
        self._finished = threading.Condition()
        self._engine: Engine | None = None

    def install(self, server: LiveServer) -> None:
        server.app.add_middleware(_Recorder, counter=self)

    def attach(self, server: LiveServer) -> None:
        self._engine = server.app.state.runtime.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._on_execute)

    def detach(self) -> None:
        if self._engine is not None:
            event.remove(self._engine, "before_cursor_execute", self._on_execute)

    def _on_execute(self, *args: Any) -> None:
        executed = _recording.get()
        if executed is not None:
            executed.append((args[2], args[3]))  # (connection, cursor, statement, parameters)

    def finished(self, key: str, executed: list[Executed]) -> None:
        with self._finished:
            self._done[key] = list(executed)
            self._finished.notify_all()

    def get(self, client: httpx.Client, url: str, **params: Any) -> Measured:
        """GET `url`; the answer must be a success. Waits until the server has finished the
        request (it may still close its session after the body was sent)."""
        key = uuid.uuid4().hex
        started = time.perf_counter()
        response = client.get(url, params=params, headers={HEADER: key})
        seconds = time.perf_counter() - started
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        with self._finished:
            if not self._finished.wait_for(lambda: key in self._done, timeout=10):
                raise AssertionError(f"the server did not finish {url}")
            return Measured(response, self._done.pop(key), seconds)


class _Recorder:
    """The outermost ASGI layer: marks a request's context as recording."""

    def __init__(self, app: ASGIApp, counter: QueryCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if scope["type"] == "http":
            wanted = HEADER.lower().encode()
            key = next((v.decode() for k, v in scope["headers"] if k == wanted), None)
        if key is None:
            await self.app(scope, receive, send)
            return
        executed: list[Executed] = []
        token = _recording.set(executed)
        try:
            await self.app(scope, receive, send)
        finally:
            _recording.reset(token)
            self.counter.finished(key, executed)
