"""What the agent reports about its machine: light (live status) and full (specs, inventory)
heartbeats, gathered with psutil. Every value is clipped to the protocol's limits, so an odd
machine (a 300-character mount point, a user name in Latin-1) never yields an invalid message."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import platform
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from steward.agent._identity import clip, hostname
from steward.protocol import DiskInfo, FullHeartbeat, LightHeartbeat, ProcessInfo

TOP_PROCESS_COUNT = 10
_SHORT = 255  # _ShortText
_MAX_IP_LENGTH = 64
_MAX_LIST = 64  # ip_addresses, logged_in_users
_MAX_DISKS = 256
_MAX_MOUNTPOINT = 1024

_OS_RELEASE = Path("/etc/os-release")
_CPUINFO = Path("/proc/cpuinfo")
_PRODUCT_SERIAL = Path("/sys/class/dmi/id/product_serial")
_CPU_MODEL_KEYS = frozenset({"model name", "model", "hardware"})


class Collector:
    """Gathers heartbeats. Blocking (psutil reads /proc): call it from a worker thread,
    e.g. `await asyncio.to_thread(collector.light)`. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # cpu_percent(interval=None) compares with the previous call: prime it once so the
        # first heartbeat has a real figure and no call ever sleeps.
        psutil.cpu_percent(interval=None)
        with contextlib.suppress(psutil.Error, OSError):
            for _proc in psutil.process_iter(["cpu_percent"]):
                pass
        self._static: dict[str, Any] | None = None

    def light(self) -> LightHeartbeat:
        with self._lock:
            return LightHeartbeat(
                cpu_percent=_percent(psutil.cpu_percent(interval=None)),
                memory_percent=_percent(psutil.virtual_memory().percent),
                ip_addresses=ip_addresses(),
                uptime_s=max(0, int(time.time() - psutil.boot_time())),
                logged_in_users=_logged_in_users(),
            )

    def full(self) -> FullHeartbeat:
        with self._lock:
            if self._static is None:
                self._static = _static_facts()
            return FullHeartbeat(
                hostname=hostname(),
                memory_total_bytes=max(0, int(psutil.virtual_memory().total)),
                boot_time=datetime.fromtimestamp(psutil.boot_time(), tz=UTC),
                disks=_disks(),
                top_processes=_top_processes(),
                **self._static,
            )


def _percent(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return min(100.0, max(0.0, float(value)))


def ip_addresses() -> list[str]:
    """Non-loopback IPv4 and IPv6 addresses of the interfaces that are up."""
    stats = psutil.net_if_stats()
    found: list[str] = []
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for address in addresses:
            if address.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            text = address.address.split("%", 1)[0]  # drop an IPv6 scope ("fe80::1%eth0")
            try:
                if ipaddress.ip_address(text).is_loopback:
                    continue
            except ValueError:
                continue
            if text not in found and len(text) <= _MAX_IP_LENGTH:
                found.append(text)
    return found[:_MAX_LIST]


def _logged_in_users() -> list[str]:
    try:
        users = psutil.users()
    except (psutil.Error, OSError):
        return []
    names = sorted({clip(user.name, _SHORT) for user in users if user.name})
    return names[:_MAX_LIST]


def _static_facts() -> dict[str, Any]:
    """Facts that do not change while the agent runs."""
    os_name, os_version = os_name_and_version()
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count(logical=True) or 0
    return {
        "os_name": clip(os_name, _SHORT),
        "os_version": clip(os_version, _SHORT),
        "architecture": clip(platform.machine(), _SHORT),
        "cpu_model": clip(cpu_model(), _SHORT),
        "cpu_cores": cores,
        "serial_number": clip(serial_number(), _SHORT),
    }


def os_name_and_version() -> tuple[str, str]:
    system = platform.system() or sys.platform
    if system == "Linux":
        pretty = _os_release().get("PRETTY_NAME")
        return system, pretty or platform.release()
    if system == "Darwin":
        return "macOS", platform.mac_ver()[0] or platform.release()
    if system == "Windows":
        return system, f"{platform.release()} ({platform.version()})"
    return system, platform.release()


def _os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in _OS_RELEASE.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip("\"'")
    return values


def cpu_model() -> str:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in _CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
                key, sep, value = line.partition(":")
                key, value = key.strip().lower(), value.strip()
                # x86 says "model name" (its "model" is a number); some ARM kernels only
                # "Model" or "Hardware".
                if sep and key in _CPU_MODEL_KEYS and value and not value.isdigit():
                    return value
    return platform.processor()


def serial_number() -> str:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return _PRODUCT_SERIAL.read_text(encoding="utf-8").strip()
    return ""


def _disks() -> list[DiskInfo]:
    disks: list[DiskInfo] = []
    seen: set[str] = set()
    try:
        partitions = psutil.disk_partitions(all=False)
    except (psutil.Error, OSError):
        return disks
    for partition in partitions:
        if partition.mountpoint in seen or len(partition.mountpoint) > _MAX_MOUNTPOINT:
            continue
        try:
            usage = psutil.disk_usage(partition.mountpoint)
        except (psutil.Error, OSError):
            continue  # CD drive without a disc, a mount we may not read, a stale NFS ...
        seen.add(partition.mountpoint)
        disks.append(
            DiskInfo(
                mountpoint=clip(partition.mountpoint, _MAX_MOUNTPOINT),
                fstype=clip(partition.fstype, _SHORT),
                total_bytes=max(0, int(usage.total)),
                used_bytes=max(0, int(usage.used)),
            )
        )
        if len(disks) >= _MAX_DISKS:
            break
    return disks


def _top_processes() -> list[ProcessInfo]:
    """The busiest processes, by CPU then memory. Processes that vanish or hide are skipped."""
    rows: list[tuple[float, int, int, str]] = []
    try:
        for proc in psutil.process_iter(["pid", "name", "cpu_percent", "memory_info"]):
            info = proc.info
            memory = info.get("memory_info")
            cpu = info.get("cpu_percent")
            rows.append(
                (
                    cpu if isinstance(cpu, float) and math.isfinite(cpu) and cpu > 0 else 0.0,
                    max(0, int(memory.rss)) if memory is not None else 0,
                    max(0, int(info.get("pid") or proc.pid)),
                    clip(info.get("name") or "", _SHORT),
                )
            )
    except (psutil.Error, OSError):
        pass  # keep what was gathered before the failure
    rows.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return [
        ProcessInfo(pid=pid, name=name, cpu_percent=cpu, memory_bytes=memory)
        for cpu, memory, pid, name in rows[:TOP_PROCESS_COUNT]
    ]
