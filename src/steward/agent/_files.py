"""Small file helpers: atomic, private writes into the state directory."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from steward.agent._errors import StateError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def ensure_dir(path: Path) -> Path:
    """Create `path` (private to its owner) if it is missing."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create state directory {path}: {exc.strerror or exc}") from exc
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see either the old or the new file, never half.

    The temporary file is created with mode 0600 (not chmod-ed afterwards, so the content is
    never readable by others, not even for a moment), flushed to disk, then renamed over `path`.
    """
    ensure_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, PRIVATE_FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable. Not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_text(path: Path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc
