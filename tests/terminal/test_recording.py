"""Recordings: asciicast v2 written incrementally with its hash, and the transcript search."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from steward.server.files.store import TenantStore
from steward.server.terminal.recording import Recording, search
from steward.server.terminal.sockets import FrameBudget


def test_a_recording_its_hash_and_its_search(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, uuid.uuid4())
    group = uuid.uuid4()
    recording = Recording(store, group, "recordings/terminal/s.cast")
    recording.start(width=80, height=24, timestamp=1, env={"TERM": "xterm-256color"}, title="t")
    recording.output(0.5, "$ ls\r\n\x1b[01;34mdir\x1b[0m  file\r\n")
    recording.input(0.6, "echo caf\u00e9\r")
    recording.resize(0.7, 100, 30)
    recording.output(1.25, "\x1b]0;title\x07caf\u00e9 X\bY\r\nprogress 10%\rprogress 99%\r\n")
    recording.close()
    path = store.resolve(group, "recordings/terminal/s.cast")
    content = path.read_bytes()
    assert hashlib.sha256(content).hexdigest() == recording.sha256
    assert len(content) == recording.size
    lines = content.decode().splitlines()
    assert json.loads(lines[0])["version"] == 2
    assert json.loads(lines[3]) == [0.7, "r", "100x30"]

    found, truncated = search(store, group, "recordings/terminal/s.cast", "DIR")
    assert [(m.time_s, m.line) for m in found] == [(0.5, "dir  file")] and not truncated
    assert [m.line for m in search(store, group, "recordings/terminal/s.cast", "café")[0]] == [
        "café Y"
    ]
    assert [m.line for m in search(store, group, "recordings/terminal/s.cast", "progress")[0]] == [
        "progress 99%"
    ]


def test_the_frame_budget() -> None:
    budget = FrameBudget(frames_per_s=1, burst_frames=3, chars_per_s=10, burst_chars=100)
    assert all(budget.spend(1) for _ in range(3))
    assert not budget.spend(1)
    assert not FrameBudget(burst_chars=100).spend(101)
