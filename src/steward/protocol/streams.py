"""Messages of the interactive channel: web terminals (`terminal.*`) and file access (`file.*`).

They travel on the agent's WebSocket only (the HTTP short poll is too slow for a shell); a server
refuses to open a terminal or a file request to an agent that only polls. Everything an agent
sends here is as untrusted as any other frame: sizes are capped by the schemas below.

Terminal: the server opens a session (`terminal.open`), sends keystrokes (`terminal.input`) and
window sizes (`terminal.resize`), and closes it (`terminal.close`); the agent answers with
`terminal.opened`, then `terminal.output` frames numbered from 0 (`seq`), and one
`terminal.exit` when the session ends for whatever reason (including a failed open).

Files: one `file.request` (an operation on a path, with the roots the tenant allows) is answered
by exactly one `file.response` with the same `request_id`. Data travels base64-encoded in
chunks of at most `MAX_FILE_CHUNK` bytes, so a transfer of any size is a sequence of requests.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Characters of keyboard input or screen output per terminal frame.
MAX_TERMINAL_CHUNK = 64 * 1024
# Bytes of file content per `file.request` (write) or `file.response` (read), before base64.
MAX_FILE_CHUNK = 1024 * 1024
_BASE64_CHUNK = (MAX_FILE_CHUNK + 2) // 3 * 4
MAX_PATH_CHARS = 4096
MAX_TERMINAL_COLS = 1000
MAX_TERMINAL_ROWS = 500

_Id = Annotated[str, Field(min_length=1, max_length=64)]
_Path = Annotated[str, Field(max_length=MAX_PATH_CHARS)]
_ShortText = Annotated[str, Field(max_length=255)]
_Cols = Annotated[int, Field(ge=1, le=MAX_TERMINAL_COLS)]
_Rows = Annotated[int, Field(ge=1, le=MAX_TERMINAL_ROWS)]


class StreamType(StrEnum):
    TERMINAL_OPEN = "terminal.open"
    TERMINAL_OPENED = "terminal.opened"
    TERMINAL_INPUT = "terminal.input"
    TERMINAL_OUTPUT = "terminal.output"
    TERMINAL_RESIZE = "terminal.resize"
    TERMINAL_CLOSE = "terminal.close"
    TERMINAL_EXIT = "terminal.exit"
    FILE_REQUEST = "file.request"
    FILE_RESPONSE = "file.response"


class FileOp(StrEnum):
    """What a `file.request` asks for. Paths are absolute on the agent's machine."""

    LIST = "list"  # the entries of a directory (result: {"entries": [...], "truncated"})
    STAT = "stat"  # one entry (result: an entry)
    READ = "read"  # `length` bytes from `offset` (response `data`; result: {"eof", "size"})
    # Uploads go to a partial file next to `path`, named by `upload_id`: WRITE appends `data`
    # at `offset` (which must equal the partial file's size: result {"size"}); PARTIAL tells
    # how much of an upload arrived (to resume; result {"size"}); COMMIT checks `sha256` and
    # renames the partial file over `path` (refused if it exists, unless `overwrite`).
    WRITE = "write"
    PARTIAL = "partial"
    COMMIT = "commit"
    ABORT = "abort"  # drop the partial file of `upload_id`
    HASH = "hash"  # SHA-256 of a file (result {"sha256", "size"})
    MKDIR = "mkdir"
    RENAME = "rename"  # `path` -> `target`
    DELETE = "delete"  # a file, or a directory when `recursive`
    WALK = "walk"  # every file below a directory (result {"entries", "truncated"}), `limit` max


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


# ---- server -> agent -------------------------------------------------------------------------


class TerminalOpen(_Message):
    """Start a shell on a new pseudo-terminal. `shell` and `run_as` empty: the agent's default
    (the user it runs as, its login shell; `cmd.exe`/PowerShell on Windows)."""

    type: Literal[StreamType.TERMINAL_OPEN] = StreamType.TERMINAL_OPEN
    session_id: _Id
    cols: _Cols = 80
    rows: _Rows = 24
    shell: _ShortText = ""
    run_as: _ShortText = ""


class TerminalInput(_Message):
    type: Literal[StreamType.TERMINAL_INPUT] = StreamType.TERMINAL_INPUT
    session_id: _Id
    data: str = Field(min_length=1, max_length=MAX_TERMINAL_CHUNK)


class TerminalResize(_Message):
    type: Literal[StreamType.TERMINAL_RESIZE] = StreamType.TERMINAL_RESIZE
    session_id: _Id
    cols: _Cols
    rows: _Rows


class TerminalClose(_Message):
    """End the session: the agent kills the shell and its children, then sends `terminal.exit`."""

    type: Literal[StreamType.TERMINAL_CLOSE] = StreamType.TERMINAL_CLOSE
    session_id: _Id


class FileRequest(_Message):
    type: Literal[StreamType.FILE_REQUEST] = StreamType.FILE_REQUEST
    request_id: _Id
    op: FileOp
    path: _Path
    # The directories this request may touch (the tenant's policy); the agent resolves `path`
    # (links included) and refuses anything outside all of them. Empty: nothing is allowed.
    roots: list[_Path] = Field(default_factory=list, max_length=64)
    target: _Path = ""
    offset: int = Field(default=0, ge=0)
    length: int = Field(default=0, ge=0, le=MAX_FILE_CHUNK)
    data: str = Field(default="", max_length=_BASE64_CHUNK)
    upload_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] = ""
    sha256: Annotated[str, Field(max_length=64, pattern=r"^[0-9a-f]*$")] = ""
    overwrite: bool = False
    recursive: bool = False
    limit: int = Field(default=1000, ge=1, le=100_000)


# ---- agent -> server -------------------------------------------------------------------------


class TerminalOpened(_Message):
    type: Literal[StreamType.TERMINAL_OPENED] = StreamType.TERMINAL_OPENED
    session_id: _Id
    pid: int = Field(default=0, ge=0)
    shell: _ShortText = ""


class TerminalOutput(_Message):
    """Screen output, decoded as UTF-8 (invalid bytes replaced), in order: `seq` counts frames."""

    type: Literal[StreamType.TERMINAL_OUTPUT] = StreamType.TERMINAL_OUTPUT
    session_id: _Id
    seq: int = Field(ge=0)
    data: str = Field(min_length=1, max_length=MAX_TERMINAL_CHUNK)


class TerminalExit(_Message):
    type: Literal[StreamType.TERMINAL_EXIT] = StreamType.TERMINAL_EXIT
    session_id: _Id
    exit_code: int | None = None
    error: _ShortText = ""


class FileEntry(_Message):
    """One directory entry as `list`, `stat` and `walk` report it."""

    name: Annotated[str, Field(max_length=MAX_PATH_CHARS)]
    path: _Path
    kind: Literal["file", "dir", "link", "other"]
    size: int = Field(ge=0)
    modified: float  # seconds since the epoch
    mode: str = Field(default="", max_length=16)  # e.g. "-rw-r--r--"
    owner: _ShortText = ""
    group: _ShortText = ""


class FileResponse(_Message):
    """The answer to one `file.request`. `ok` false: `error_code` is one of `not_found`,
    `outside_roots`, `unsafe_path`, `exists`, `not_a_directory`, `is_a_directory`,
    `permission_denied`, `hash_mismatch`, `offset_mismatch`, `too_large`, `io_error`,
    `invalid_request`."""

    type: Literal[StreamType.FILE_RESPONSE] = StreamType.FILE_RESPONSE
    request_id: _Id
    ok: bool
    error_code: Annotated[str, Field(max_length=64)] = ""
    error: Annotated[str, Field(max_length=1024)] = ""
    result: dict[str, Any] = Field(default_factory=dict)
    data: str = Field(default="", max_length=_BASE64_CHUNK)


AgentStreamMessage = TerminalOpened | TerminalOutput | TerminalExit | FileResponse
ServerStreamMessage = TerminalOpen | TerminalInput | TerminalResize | TerminalClose | FileRequest
