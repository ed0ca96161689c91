"""The agent's connection logic against stand-ins for the server: `fake_server` (a real
WebSocket server speaking the protocol) and, for polling, an httpx transport that answers
like the server's poll endpoint. Commands run for real."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from steward.agent import (
    AgentState,
    AuthenticationError,
    Channel,
    Collector,
    HandshakeFailed,
    Ledger,
    PollTransport,
    ServerBusy,
    ServerUnreachable,
    UnexpectedResponse,
    WebSocketTransport,
)
from steward.protocol import (
    AgentConfig,
    CommandDispatch,
    CommandResult,
    CommandStatus,
)
from tests.agent.commands_support import PollServer

MakeDispatch = Callable[..., CommandDispatch]
MakeState = Callable[..., AgentState]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")


async def test_websocket_session(
    fake_server: Any, start_agent: Any, make_state: MakeState, make_dispatch: MakeDispatch
) -> None:
    agent, task = start_agent(make_state(fake_server.url), transport="ws")

    hello = await fake_server.expect("hello")
    assert hello["protocol_version"] == 1 and hello["hostname"]
    first = await fake_server.received.get()
    assert first["type"] == "heartbeat.full"  # right after the welcome

    dispatch = make_dispatch("echo hi")
    await fake_server.send(dispatch)
    assert (await fake_server.expect("command.ack"))["command_id"] == dispatch.command_id
    result = await fake_server.expect("command.result")
    assert (result["command_id"], result["status"], result["stdout"]) == (
        dispatch.command_id,
        "succeeded",
        "hi\n",
    )

    # The light interval was 30 s; a shorter one counts at once.
    await fake_server.send(
        AgentConfig(light_heartbeat_interval_s=0.3, full_heartbeat_interval_s=3600)
    )
    await fake_server.expect("heartbeat.light", timeout=2)
    await fake_server.expect("heartbeat.light", timeout=2)
    assert agent.connected and agent.current_transport == "ws"

    agent.stop()
    async with asyncio.timeout(5):
        await task
    assert fake_server.close_codes == [1000]  # a clean close frame


async def test_a_redispatched_command_is_answered_from_the_ledger(
    fake_server: Any,
    start_agent: Any,
    make_state: MakeState,
    make_dispatch: MakeDispatch,
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs.txt"
    dispatch = make_dispatch(f"echo ran >> '{runs}'")
    start_agent(make_state(fake_server.url), transport="ws")
    await fake_server.expect("hello")
    await fake_server.send(dispatch)
    first = await fake_server.expect("command.result")
    await fake_server.send(dispatch)
    again = await fake_server.expect("command.result")
    assert again == first
    assert runs.read_text() == "ran\n"


async def test_results_from_before_a_restart_are_sent(
    fake_server: Any, start_agent: Any, make_state: MakeState, state_dir: Path
) -> None:
    ledger = Ledger.in_dir(state_dir)
    ledger.start("c-old")  # the agent died while it ran
    start_agent(make_state(fake_server.url), transport="ws")
    result = await fake_server.expect("command.result")
    assert (result["command_id"], result["status"]) == ("c-old", "failed")
    assert "restarted" in result["error"]


async def test_refused_credentials_are_retried_slowly(
    fake_server: Any, start_agent: Any, make_state: MakeState
) -> None:
    agent, task = start_agent(make_state(fake_server.url, agent_secret="wrong"), transport="ws")
    await asyncio.sleep(1.5)
    assert len(fake_server.handshakes) == 1
    assert not agent.connected
    agent.stop()  # also during the long wait
    async with asyncio.timeout(2):
        await task


@pytest.mark.parametrize("status", [429, 503])  # at capacity / unavailable
async def test_retry_after_is_honoured(
    fake_server: Any, start_agent: Any, make_state: MakeState, status: int
) -> None:
    fake_server.reject = (status, "server_busy", "1")
    start_agent(make_state(fake_server.url), transport="ws")
    async with asyncio.timeout(5):
        while not fake_server.handshakes:
            await asyncio.sleep(0.01)
    fake_server.reject = None
    await fake_server.expect("hello")
    first, second = fake_server.handshakes[:2]
    assert second - first >= 0.95


async def test_websocket_errors_map_to_the_exception_tree(
    fake_server: Any, make_state: MakeState, state_dir: Path, collector: Collector
) -> None:
    channel = Channel(Ledger.in_dir(state_dir), collector)
    with pytest.raises(AuthenticationError) as refused:
        await WebSocketTransport(make_state(fake_server.url, agent_secret="x")).run(channel)
    assert refused.value.code == "agent_unauthorized"

    fake_server.reject = (503, "server_busy", "12")
    with pytest.raises(ServerBusy) as busy:
        await WebSocketTransport(make_state(fake_server.url)).run(channel)
    assert busy.value.retry_after == 12

    fake_server.reject = (400, "bad_request", None)
    with pytest.raises(HandshakeFailed) as failed:
        await WebSocketTransport(make_state(fake_server.url)).run(channel)
    assert (failed.value.status, failed.value.code) == (400, "bad_request")

    fake_server.reject = None
    fake_server.close_after_hello = 1013  # shedding load: back off, but stay on WebSockets
    with pytest.raises(ServerBusy):
        await WebSocketTransport(make_state(fake_server.url)).run(channel)
    fake_server.close_after_hello = None

    fake_server.refuse_hello = "protocol_unsupported"
    with pytest.raises(UnexpectedResponse) as refused_hello:
        await WebSocketTransport(make_state(fake_server.url)).run(channel)
    assert refused_hello.value.code == "protocol_unsupported"

    with pytest.raises(ServerUnreachable):
        await WebSocketTransport(make_state("http://127.0.0.1:9")).run(channel)
    assert not channel.is_connected


# ---- polling -----------------------------------------------------------------------------


async def test_polling_session(
    start_agent: Any, make_state: MakeState, make_dispatch: MakeDispatch
) -> None:
    server = PollServer(light_interval_s=30)
    dispatch = make_dispatch("echo polled")
    server.queued = [dispatch]
    agent, _task = start_agent(
        make_state("http://steward.test"), transport="poll", http_transport=server.transport()
    )
    # The command is answered at once, not a light interval (30 s) later.
    result = await server.wait_for("command.result", timeout=5)
    assert (result["status"], result["stdout"]) == ("succeeded", "polled\n")
    assert server.sent("command.ack")[0]["command_id"] == dispatch.command_id
    assert [m["type"] for m in server.polls[0]] == ["heartbeat.light", "heartbeat.full"]
    assert all(poll[0]["type"] == "heartbeat.light" for poll in server.polls)
    assert set(server.authorizations) == {"Agent agent-1:s3cret-value"}
    assert agent.connected and agent.current_transport == "poll"
    polls = len(server.polls)
    await asyncio.sleep(0.5)
    assert len(server.polls) == polls  # and then quiet until the next light interval


async def test_poll_errors_map_to_the_exception_tree(
    make_state: MakeState, state_dir: Path, collector: Collector
) -> None:
    server = PollServer()
    channel = Channel(Ledger.in_dir(state_dir), collector)
    async with httpx.AsyncClient(transport=server.transport()) as http:
        transport = PollTransport(make_state("http://steward.test"), http)
        server.status = 401
        with pytest.raises(AuthenticationError):
            await transport.poll_once(channel)
        server.status = 503
        with pytest.raises(ServerBusy):
            await transport.poll_once(channel)


async def test_undelivered_results_stay_pending_when_a_poll_fails(
    make_state: MakeState, state_dir: Path, collector: Collector
) -> None:
    ledger = Ledger.in_dir(state_dir)
    ledger.finish(CommandResult(command_id="c-1", status=CommandStatus.SUCCEEDED, exit_code=0))
    channel = Channel(ledger, collector)
    server = PollServer()
    async with httpx.AsyncClient(transport=server.transport()) as http:
        transport = PollTransport(make_state("http://steward.test"), http)
        server.status = 500
        with pytest.raises(Exception, match="no"):
            await transport.poll_once(channel)
        assert [m.command_id for m in channel.pending()] == ["c-1"]
        server.status = 200
        await transport.poll_once(channel)
    assert channel.pending() == []
    assert Ledger.in_dir(state_dir).undelivered() == []


async def test_auto_mode_falls_back_to_polling(
    fake_server: Any, start_agent: Any, make_state: MakeState
) -> None:
    fake_server.reject = (400, "websocket_unsupported", None)  # e.g. a proxy in the way
    server = PollServer()
    agent, _task = start_agent(make_state(fake_server.url), http_transport=server.transport())
    await server.wait_for("heartbeat.light", timeout=15)
    assert len(fake_server.handshakes) == 3
    assert agent.current_transport == "poll"


async def test_auto_mode_does_not_poll_a_server_that_is_down(
    start_agent: Any, make_state: MakeState
) -> None:
    # Nothing listens on port 9: polling would not help, so the agent keeps to WebSockets.
    server = PollServer()
    agent, _task = start_agent(make_state("http://127.0.0.1:9"), http_transport=server.transport())
    await asyncio.sleep(3.5)
    assert server.polls == []
    assert agent.current_transport == "ws"


async def test_auto_mode_returns_to_websockets_when_polling_fails_too(
    fake_server: Any, start_agent: Any, make_state: MakeState
) -> None:
    fake_server.reject = (502, "bad_gateway", None)
    server = PollServer()
    server.status = 502
    start_agent(make_state(fake_server.url), http_transport=server.transport())
    async with asyncio.timeout(15):
        while len(fake_server.handshakes) < 4:
            await asyncio.sleep(0.05)
    assert len(server.polls) == 1
