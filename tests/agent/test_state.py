from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from steward.agent import (
    AgentState,
    NotEnrolled,
    StateError,
    default_state_dir,
    load_state,
    machine_id,
    save_state,
)
from steward.agent._identity import MACHINE_ID_ENV, _generated_machine_id, clip, hostname
from steward.agent._state import STATE_DIR_ENV, normalize_server_url

MakeState = Callable[..., AgentState]


def test_state_round_trips(state_dir: Path, make_state: MakeState) -> None:
    state = make_state("https://fleet.example")
    save_state(state_dir, state)
    assert load_state(state_dir) == state


def test_state_file_is_private(state_dir: Path, make_state: MakeState) -> None:
    path = save_state(state_dir, make_state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700


def test_state_write_is_atomic(state_dir: Path, make_state: MakeState) -> None:
    path = save_state(state_dir, make_state(device_id="first"))
    inode = path.stat().st_ino
    save_state(state_dir, make_state(device_id="second"))
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert load_state(state_dir).device_id == "second"
    assert [p.name for p in state_dir.iterdir()] == ["state.json"]  # no temp files left


def test_state_on_disk_has_the_secret_but_repr_does_not(
    state_dir: Path, make_state: MakeState
) -> None:
    state = make_state(agent_secret="very-secret")
    path = save_state(state_dir, state)
    assert json.loads(path.read_text())["agent_secret"] == "very-secret"
    assert "very-secret" not in repr(state)
    assert "very-secret" not in json.dumps(state.public_dict())


def test_missing_state_is_not_enrolled(state_dir: Path) -> None:
    with pytest.raises(NotEnrolled) as caught:
        load_state(state_dir)
    assert caught.value.code == "not_enrolled"


@pytest.mark.parametrize("content", ["{", "[]", '{"agent_id": "a"}'])
def test_broken_state_is_a_state_error(state_dir: Path, content: str) -> None:
    state_dir.mkdir()
    (state_dir / "state.json").write_text(content)
    with pytest.raises(StateError) as caught:
        load_state(state_dir)
    assert not isinstance(caught.value, NotEnrolled)


def test_state_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "x"))
    assert default_state_dir() == tmp_path / "x"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux defaults")
def test_default_state_dir_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    expected = (
        Path("/var/lib/steward-agent")
        if os.geteuid() == 0
        else Path.home() / ".local" / "state" / "steward-agent"
    )
    assert default_state_dir() == expected


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://fleet.example/", "https://fleet.example"),
        ("http://10.0.0.5:8000", "http://10.0.0.5:8000"),
        (" https://fleet.example/steward/ ", "https://fleet.example/steward"),
    ],
)
def test_server_url_is_normalized(url: str, normalized: str) -> None:
    assert normalize_server_url(url) == normalized


@pytest.mark.parametrize(
    "url", ["fleet.example", "ftp://fleet.example", "https://", "http://x/?a=1"]
)
def test_bad_server_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_server_url(url)


# ---- machine identity --------------------------------------------------------------------


def test_machine_id_override(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> None:
    monkeypatch.setenv(MACHINE_ID_ENV, "  simulated-machine-7 ")
    assert machine_id(state_dir) == "simulated-machine-7"
    monkeypatch.setenv(MACHINE_ID_ENV, "m" * 500)
    assert machine_id(state_dir) == "m" * 128


def test_machine_id_is_stable(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> None:
    monkeypatch.delenv(MACHINE_ID_ENV, raising=False)
    first = machine_id(state_dir)
    assert first and len(first) <= 128
    assert machine_id(state_dir) == first


def test_generated_machine_id_is_kept(state_dir: Path) -> None:
    generated = _generated_machine_id(state_dir)
    assert _generated_machine_id(state_dir) == generated
    assert (state_dir / "machine-id").read_text().strip() == generated


def test_hostname_is_valid() -> None:
    assert 1 <= len(hostname()) <= 255


def test_clip_makes_odd_strings_safe() -> None:
    assert clip("x" * 300, 255) == "x" * 255
    assert clip("caf\udce9", 255) == "caf\ufffd\ufffd\ufffd"  # undecodable byte from the OS
    clip("\ud800", 10).encode("utf-8")  # no lone surrogate survives
