from __future__ import annotations

import ipaddress
import json

import pytest

from steward.agent import Collector
from steward.agent._collector import TOP_PROCESS_COUNT, ip_addresses
from steward.protocol import dump_message, parse_agent_message


@pytest.fixture(scope="module")
def collector() -> Collector:
    return Collector()


def _round_trip(message: object) -> object:
    # What the server will do with it: strict parsing of the wire format.
    return parse_agent_message(dump_message(message))  # type: ignore[arg-type]


def test_light_heartbeat_is_valid(collector: Collector) -> None:
    heartbeat = collector.light()
    assert _round_trip(heartbeat) == heartbeat
    assert 0 <= heartbeat.cpu_percent <= 100
    assert 0 < heartbeat.memory_percent <= 100
    assert heartbeat.uptime_s > 0


def test_ip_addresses_skip_loopback() -> None:
    addresses = ip_addresses()
    for address in addresses:
        assert not ipaddress.ip_address(address).is_loopback
        assert "%" not in address
    assert len(addresses) == len(set(addresses))


def test_full_heartbeat_is_valid(collector: Collector) -> None:
    heartbeat = collector.full()
    assert _round_trip(heartbeat) == heartbeat
    assert heartbeat.hostname
    assert heartbeat.os_name and heartbeat.os_version
    assert heartbeat.cpu_cores >= 1
    assert heartbeat.memory_total_bytes > 0
    assert heartbeat.boot_time is not None
    assert heartbeat.disks, "this machine has at least one mounted disk"
    assert all(disk.total_bytes >= disk.used_bytes for disk in heartbeat.disks)
    assert 0 < len(heartbeat.top_processes) <= TOP_PROCESS_COUNT
    keys = [(p.cpu_percent, p.memory_bytes) for p in heartbeat.top_processes]
    assert keys == sorted(keys, reverse=True)


def test_heartbeats_fit_in_a_frame(collector: Collector) -> None:
    for message in (collector.light(), collector.full()):
        assert len(dump_message(message).encode("utf-8")) < 64 * 1024
        json.loads(dump_message(message))


def test_cpu_percent_does_not_block(collector: Collector) -> None:
    import time

    started = time.monotonic()
    collector.light()
    assert time.monotonic() - started < 0.5
