"""Who this machine is: a stable machine id (sent at enrollment) and its hostname."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import socket
import sys
import uuid
from pathlib import Path

from steward.agent._errors import StateError
from steward.agent._files import atomic_write, read_text

MACHINE_ID_ENV = "STEWARD_AGENT_MACHINE_ID"
GENERATED_ID_FILE = "machine-id"
MAX_MACHINE_ID_LENGTH = 128  # EnrollRequest.machine_id
MAX_HOSTNAME_LENGTH = 255

_LINUX_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))

logger = logging.getLogger("steward.agent")


def machine_id(state_dir: Path) -> str:
    """A stable id of this machine (not of this agent install).

    `$STEWARD_AGENT_MACHINE_ID` wins (tests use it to play several machines on one host); then
    the OS's own id (`/etc/machine-id`, or the registry's MachineGuid on Windows); else a random
    id generated once and kept in the state directory.
    """
    candidates = (os.environ.get(MACHINE_ID_ENV), _os_machine_id())
    for candidate in candidates:
        if candidate and candidate.strip():
            return candidate.strip()[:MAX_MACHINE_ID_LENGTH]
    return _generated_machine_id(state_dir)


def _os_machine_id() -> str | None:
    if sys.platform.startswith("linux"):
        for path in _LINUX_MACHINE_ID_FILES:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                value = path.read_text(encoding="utf-8").strip()
                if value:
                    return value
        return None
    if sys.platform == "win32":
        return _windows_machine_guid()
    return None


def _windows_machine_guid() -> str | None:
    if sys.platform != "win32":
        return None
    import winreg

    try:
        access = winreg.KEY_READ | winreg.KEY_WOW64_64KEY
        with winreg.OpenKey(
            winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography", 0, access
        ) as key:
            value, _kind = winreg.QueryValueEx(key, "MachineGuid")
    except OSError:
        return None
    return str(value) if value else None


def _generated_machine_id(state_dir: Path) -> str:
    path = state_dir / GENERATED_ID_FILE
    try:
        existing = read_text(path)
    except StateError:
        existing = None
    if existing and existing.strip():
        return existing.strip()[:MAX_MACHINE_ID_LENGTH]
    value = uuid.uuid4().hex
    atomic_write(path, (value + "\n").encode("ascii"))
    logger.info("no OS machine id found; generated %s and stored it in %s", value, path)
    return value


def hostname() -> str:
    """This machine's name, never empty and never longer than the protocol allows."""
    name = socket.gethostname() or platform.node() or "unknown"
    return clip(name, MAX_HOSTNAME_LENGTH) or "unknown"


def clip(text: str, limit: int) -> str:
    """`text` made safe for a protocol string field: valid UTF-8 (lone surrogates, which is how
    Python carries undecodable OS bytes, become U+FFFD) and at most `limit` characters."""
    safe = text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")
    return safe[:limit]
