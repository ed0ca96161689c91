"""Live output: coalesced chunks with character offsets, in order, never splitting a
character, over the WebSocket and over polling."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from steward.agent import run_command
from steward.agent._executor import OUTPUT_FLUSH_CHARS
from steward.protocol import MAX_OUTPUT_BYTES, MAX_OUTPUT_CHUNK, CommandDispatch, CommandStatus
from tests.agent.commands_support import PollServer

MakeDispatch = Callable[..., CommandDispatch]
Chunks = list[tuple[str, int, str, float]]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="uses POSIX shell commands")


def output_sink() -> tuple[Chunks, Callable[[str, int, str], None]]:
    chunks: Chunks = []

    def sink(stream: str, offset: int, data: str) -> None:
        chunks.append((stream, offset, data, time.monotonic()))

    return chunks, sink


def joined(chunks: Chunks, stream: str) -> str:
    """The stream rebuilt from its chunks, checking that each continues the previous one."""
    text = ""
    for name, offset, data, _at in chunks:
        if name == stream:
            assert offset == len(text), (offset, len(text))
            assert 0 < len(data) <= MAX_OUTPUT_CHUNK
            text += data
    return text


async def test_chunks_arrive_while_the_command_runs(make_dispatch: MakeDispatch) -> None:
    chunks, sink = output_sink()
    command = "for i in 1 2 3 4 5; do echo out $i; echo err $i >&2; sleep 0.2; done"
    started = time.monotonic()
    result = await run_command(make_dispatch(command), on_output=sink)
    ended = time.monotonic()
    assert result.status is CommandStatus.SUCCEEDED
    assert joined(chunks, "stdout") == result.stdout == "".join(f"out {i}\n" for i in range(1, 6))
    assert joined(chunks, "stderr") == result.stderr
    stdout_times = [at for name, _o, _d, at in chunks if name == "stdout"]
    assert len(stdout_times) >= 3  # coalesced, but not all at the end
    assert stdout_times[0] - started < 0.6 and ended - stdout_times[0] > 0.4


async def test_multibyte_characters_are_never_split(make_dispatch: MakeDispatch) -> None:
    chunks, sink = output_sink()
    # "é" (\303\251) and "✓" (\342\234\223) written byte by byte with pauses in between.
    command = "printf 'a\\303'; sleep 0.4; printf '\\251b\\342'; sleep 0.4; printf '\\234\\223'"
    result = await run_command(make_dispatch(command), on_output=sink)
    assert joined(chunks, "stdout") == result.stdout == "aéb✓"
    assert len([c for c in chunks if c[0] == "stdout"]) >= 2
    assert all("\ufffd" not in data for _s, _o, data, _a in chunks)


async def test_big_output_is_chunked_and_stops_at_the_cap(make_dispatch: MakeDispatch) -> None:
    chunks, sink = output_sink()
    result = await run_command(
        make_dispatch("head -c 3000000 /dev/zero | tr '\\0' x"), on_output=sink
    )
    text = joined(chunks, "stdout")
    assert len(text) == MAX_OUTPUT_BYTES == len(result.stdout)
    assert result.stdout_truncated
    assert max(len(data) for _s, _o, data, _a in chunks) <= max(OUTPUT_FLUSH_CHARS, 64 * 1024)


# ---- through the channel -------------------------------------------------------------------


async def test_output_frames_over_the_websocket(
    fake_server: Any, start_agent: Any, make_state: Any, make_dispatch: MakeDispatch
) -> None:
    start_agent(make_state(fake_server.url), transport="ws")
    await fake_server.expect("hello")
    dispatch = make_dispatch("for i in $(seq 1 6); do echo line $i; sleep 0.15; done")
    await fake_server.send(dispatch)
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while True:
            message = await fake_server.received.get()
            if message["type"] == "command.output":
                frames.append(message)
            elif message["type"] == "command.result":
                result = message
                break
    assert len(frames) >= 2
    assert {frame["command_id"] for frame in frames} == {dispatch.command_id}
    text = ""
    for frame in frames:
        assert frame["stream"] == "stdout" and frame["offset"] == len(text)
        text += frame["data"]
    assert text == result["stdout"] == "".join(f"line {i}\n" for i in range(1, 7))


async def test_output_frames_over_polling(
    start_agent: Any, make_state: Any, make_dispatch: MakeDispatch
) -> None:
    server = PollServer(light_interval_s=30)
    dispatch = make_dispatch("for i in 1 2 3 4; do echo polled $i; sleep 0.3; done")
    server.queued = [dispatch]
    start_agent(
        make_state("http://steward.test"), transport="poll", http_transport=server.transport()
    )
    result = await server.wait_for("command.result", timeout=10)
    frames = server.sent("command.output")
    assert len(frames) >= 2
    assert "".join(frame["data"] for frame in frames) == result["stdout"]
    assert [frame["offset"] for frame in frames] == sorted(frame["offset"] for frame in frames)
    # The output of the command came before its result.
    order = [m["type"] for poll in server.polls for m in poll if m["type"].startswith("command.")]
    assert order.index("command.result") > max(
        i for i, t in enumerate(order) if t == "command.output"
    )


async def test_the_output_queue_is_bounded_and_per_connection(
    state_dir: Any, collector: Any
) -> None:
    from steward.agent import Channel, Ledger
    from steward.agent._channel import MAX_OUTPUT_FRAMES
    from steward.protocol import CommandAck

    channel = Channel(Ledger.in_dir(state_dir), collector)
    channel._on_output("c-1", "stdout", 0, "lost")  # not connected: nobody to tell
    assert channel.pending() == []
    channel.on_connected()
    channel._queue(CommandAck(command_id="c-1"))
    for index in range(MAX_OUTPUT_FRAMES + 10):
        channel._on_output("c-1", "stdout", index, "x")
    pending = channel.pending()
    assert pending[0] == CommandAck(command_id="c-1")
    offsets = [frame.offset for frame in pending[1:]]  # type: ignore[union-attr]
    assert offsets == list(range(10, MAX_OUTPUT_FRAMES + 10))  # the oldest were dropped
    await channel.delivered(pending[:5])
    assert [m.offset for m in channel.pending()][:1] == [14]  # type: ignore[union-attr]
    channel.begin_connection()  # a new connection: live output is not carried over
    assert channel.pending() == []
