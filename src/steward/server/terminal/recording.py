"""Recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), written as the
session runs into the tenant's store, and read back for playback, search and watchers.

One JSON header line (`version`, `width`, `height`, `timestamp`, `env`, `title`), then one line
per event: `[seconds since the start, "o", output]`, `[t, "i", input]` (when the tenant records
input) and `[t, "r", "COLSxROWS"]` for resizes. The SHA-256 of the file is computed while it is
written; it goes into the audit log when the session closes, so an altered recording shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedReader, BufferedWriter
from pathlib import Path
from typing import Any

from steward.server.errors import NotFound
from steward.server.files.store import TenantStore
from steward.server.terminal.models import TerminalSession

RECORDINGS_DIR = "recordings/terminal"
MAX_SEARCH_MATCHES = 200
MAX_LINE_CHARS = 500


def recording_path(session_id: uuid.UUID) -> str:
    """Where a session's recording lives in its group's directory."""
    return f"{RECORDINGS_DIR}/{session_id}.cast"


class RecordingFailed(Exception):
    """The recording could not be written (disk full, permissions ...)."""


class Recording:
    """One recording being written. Every event is flushed at once (watchers read the file,
    and a crash loses at most the event being written)."""

    def __init__(self, store: TenantStore, group_id: uuid.UUID, relative: str) -> None:
        self._store = store
        self._group_id = group_id
        self.relative = relative
        self._file: BufferedWriter | None = None
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def start(self, *, width: int, height: int, timestamp: int, env: dict[str, str],
              title: str) -> None:  # fmt: skip
        try:
            self._file = self._store.open_for_write(self._group_id, self.relative)
        except OSError as exc:
            raise RecordingFailed(f"cannot create the recording: {exc.strerror or exc}") from exc
        header = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": timestamp,
            "env": env,
            "title": title,
        }
        self._write(header)

    def output(self, at_s: float, data: str) -> None:
        self._write([round(at_s, 6), "o", data])

    def input(self, at_s: float, data: str) -> None:
        self._write([round(at_s, 6), "i", data])

    def resize(self, at_s: float, cols: int, rows: int) -> None:
        self._write([round(at_s, 6), "r", f"{cols}x{rows}"])

    def _write(self, event: Any) -> None:
        if self._file is None:
            raise RecordingFailed("the recording is closed")
        line = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        try:
            self._file.write(line)
            self._file.flush()
        except (OSError, ValueError) as exc:
            self.abandon()
            raise RecordingFailed(f"cannot write the recording: {exc}") from exc
        self._hash.update(line)
        self.size += len(line)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                raise RecordingFailed(f"cannot close the recording: {exc}") from exc
            finally:
                self._file = None

    def abandon(self) -> None:
        """Stop writing after a failure (what was written stays)."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


# ---- reading ---------------------------------------------------------------------------------


def read_events(store: TenantStore, group_id: uuid.UUID, relative: str) -> Iterator[list[Any]]:
    """The events of a recording (the header skipped; unreadable lines too)."""
    with store.open_for_read(group_id, relative) as file:
        for number, raw in enumerate(file):
            if number == 0:
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, list) and len(event) == 3 and isinstance(event[2], str):
                yield event


# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-character escapes.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[PX^_][^\x1b]*\x1b\\"
    r"|\x1b[ -/]*[0-~]"
)
_CONTROL = re.compile(r"[\x00-\x07\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Match:
    time_s: float
    line: str


def plain_lines(events: Iterator[list[Any]]) -> Iterator[tuple[float, str]]:
    """Output as lines of plain text, each with the time its last character was written."""
    line: list[str] = []
    at = 0.0
    for when, kind, data in events:
        if kind != "o":
            continue
        at = float(when) if isinstance(when, int | float) else at
        text = _ANSI.sub("", data).replace("\r\n", "\n")
        for ch in text:
            if ch == "\n":
                yield at, "".join(line)
                line = []
            elif ch == "\r":
                line = []
            elif ch == "\b":
                if line:
                    line.pop()
            elif not _CONTROL.match(ch) and len(line) < 10 * MAX_LINE_CHARS:
                line.append(ch)
    if line:
        yield at, "".join(line)


def search(
    store: TenantStore, group_id: uuid.UUID, relative: str, query: str
) -> tuple[list[Match], bool]:
    """Lines of output containing `query` (case-insensitive), with their times; and whether
    there were more than `MAX_SEARCH_MATCHES`."""
    needle = query.casefold()
    found: list[Match] = []
    for at, line in plain_lines(read_events(store, group_id, relative)):
        if needle in line.casefold():
            if len(found) == MAX_SEARCH_MATCHES:
                return found, True
            found.append(Match(at, line[:MAX_LINE_CHARS]))
    return found, False


def _located(row: TerminalSession) -> tuple[uuid.UUID, str]:
    if row.recording_group_id is None or not row.recording_path:
        raise NotFound("this session has no recording", code="no_recording")
    return row.recording_group_id, row.recording_path


def open_recording(data_dir: Path, row: TerminalSession) -> BufferedReader:
    """A session's recording, open for reading (404 `no_recording` when there is none)."""
    group_id, relative = _located(row)
    try:
        return TenantStore(data_dir, row.tenant_id).open_for_read(group_id, relative)
    except FileNotFoundError:
        raise NotFound("the recording is missing", code="no_recording") from None


def stored_digest(data_dir: Path, row: TerminalSession) -> tuple[int, str]:
    """The size and SHA-256 of a session's recording as stored; (0, "") when there is none
    (blocking: run it on a thread)."""
    digest, size = hashlib.sha256(), 0
    try:
        with open_recording(data_dir, row) as file:
            while chunk := file.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
    except (NotFound, OSError):
        return 0, ""
    return size, digest.hexdigest()


def search_recording(data_dir: Path, row: TerminalSession, query: str) -> tuple[list[Match], bool]:
    """`search` on a session's recording (blocking: run it on a thread)."""
    group_id, relative = _located(row)
    try:
        return search(TenantStore(data_dir, row.tenant_id), group_id, relative, query)
    except FileNotFoundError:
        raise NotFound("the recording is missing", code="no_recording") from None
