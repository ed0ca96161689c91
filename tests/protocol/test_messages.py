from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from steward.protocol import (
    MAX_MESSAGE_BYTES,
    MAX_OUTPUT_BYTES,
    CommandDispatch,
    CommandResult,
    CommandType,
    LightHeartbeat,
    ProtocolError,
    Welcome,
    dump_message,
    parse_agent_message,
    parse_server_message,
)


def test_round_trip_of_agent_messages() -> None:
    beat = LightHeartbeat(cpu_percent=1.5, memory_percent=2, uptime_s=3)
    assert parse_agent_message(dump_message(beat)) == beat
    result = CommandResult(command_id="c1", status="succeeded", exit_code=0, stdout="ok")
    assert parse_agent_message(dump_message(result)) == result


def test_round_trip_of_server_messages() -> None:
    welcome = Welcome(
        device_id="d",
        server_time=datetime.now(UTC),
        light_heartbeat_interval_s=30,
        full_heartbeat_interval_s=300,
    )
    assert parse_server_message(dump_message(welcome)) == welcome
    dispatch = CommandDispatch(
        command_id="c", command_type=CommandType.SHELL, payload={"command": "id"}, timeout_s=5
    )
    assert parse_server_message(dump_message(dispatch)) == dispatch


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    raw = json.dumps(
        {"type": "heartbeat.light", "cpu_percent": 1, "memory_percent": 1, "uptime_s": 1, "new": 1}
    )
    assert isinstance(parse_agent_message(raw), LightHeartbeat)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "malformed_json"),
        ("", "malformed_json"),
        ("[]", "malformed_message"),
        ("{}", "malformed_message"),
        ('{"type": "x"}', "unknown_type"),
        ('{"type": "welcome"}', "unknown_type"),  # a server message from an agent
        ('{"type": "heartbeat.light", "cpu_percent": -1}', "invalid_message"),
        ('{"type": "command.result", "command_id": "c", "status": "queued"}', "invalid_message"),
    ],
)
def test_bad_agent_frames_raise_with_a_stable_code(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as error:
        parse_agent_message(raw)
    assert error.value.code == code


def test_frames_over_the_limit_are_refused_unparsed() -> None:
    with pytest.raises(ProtocolError) as error:
        parse_agent_message(b" " * (MAX_MESSAGE_BYTES + 1))
    assert error.value.code == "message_too_large"


def test_output_fields_are_capped() -> None:
    with pytest.raises(ProtocolError):
        parse_agent_message(
            json.dumps(
                {
                    "type": "command.result",
                    "command_id": "c",
                    "status": "failed",
                    "stdout": "x" * (MAX_OUTPUT_BYTES + 1),
                }
            )
        )


def test_the_limit_counts_bytes_not_characters() -> None:
    text = json.dumps(
        {"type": "hello", "agent_version": "가" * (MAX_MESSAGE_BYTES // 3 + 1000), "hostname": "h"},
        ensure_ascii=False,
    )
    assert len(text) < MAX_MESSAGE_BYTES < len(text.encode())
    with pytest.raises(ProtocolError) as error:
        parse_agent_message(text)
    assert error.value.code == "message_too_large"


def test_infinite_and_unbounded_numbers_are_refused() -> None:
    with pytest.raises(ProtocolError):
        parse_server_message(
            '{"type": "agent.config", "light_heartbeat_interval_s": Infinity,'
            ' "full_heartbeat_interval_s": 300}'
        )
    with pytest.raises(ProtocolError):
        parse_server_message(
            json.dumps(
                {
                    "type": "command.dispatch",
                    "command_id": "x" * 65,
                    "command_type": "shell",
                    "payload": {},
                    "timeout_s": 5,
                }
            )
        )
