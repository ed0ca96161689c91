"""The agent's enrollment state (`state.json`) and where the state directory lives."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steward.agent._errors import NotEnrolled, StateError
from steward.agent._files import atomic_write, read_text

STATE_DIR_ENV = "STEWARD_AGENT_STATE_DIR"
STATE_FILE_NAME = "state.json"


class AgentState(BaseModel):
    """What enrollment gave the agent. `agent_secret` is never shown by `repr()`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    server_url: str
    agent_id: str = Field(min_length=1)
    agent_secret: str = Field(min_length=1, repr=False)
    device_id: str
    tenant: str
    enrolled_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def public_dict(self) -> dict[str, str]:
        """Everything but the secret, for display."""
        return {
            "server_url": self.server_url,
            "agent_id": self.agent_id,
            "device_id": self.device_id,
            "tenant": self.tenant,
            "enrolled_at": self.enrolled_at.isoformat(),
        }


def default_state_dir() -> Path:
    """`$STEWARD_AGENT_STATE_DIR`, else the platform's place for a system service's state
    (root on Linux, `%ProgramData%` on Windows), else the user's state directory."""
    from_env = os.environ.get(STATE_DIR_ENV)
    if from_env:
        return Path(from_env)
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "Steward"
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        return Path("/var/lib/steward-agent")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "steward-agent"


def normalize_server_url(url: str) -> str:
    """`https://host[:port][/prefix]` without a trailing slash. Raises ValueError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"server URL must be http(s)://host[:port], not {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("server URL must not have a query or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE_NAME


def save_state(state_dir: Path, state: AgentState) -> Path:
    """Write `state.json` atomically with mode 0600."""
    path = state_path(state_dir)
    atomic_write(path, (state.model_dump_json(indent=2) + "\n").encode("utf-8"))
    return path


def load_state(state_dir: Path) -> AgentState:
    """Read `state.json`. Raises `NotEnrolled` when it is missing, `StateError` when unusable."""
    path = state_path(state_dir)
    text = read_text(path)
    if text is None:
        raise NotEnrolled(f"not enrolled: {path} does not exist; run `steward-agent enroll`")
    try:
        state = AgentState.model_validate(json.loads(text))
        normalize_server_url(state.server_url)
    except (ValueError, ValidationError) as exc:
        raise StateError(f"{path} is not a valid state file: {exc}") from exc
    return state
