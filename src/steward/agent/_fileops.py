"""File access for the console: list, read and write in chunks, rename, delete, hash, walk.

Every `file.request` is answered by exactly one `file.response`. The blocking work runs on a
thread (`asyncio.to_thread`), one request at a time per request id, many in parallel.

The server checks every path against the tenant's policy before it sends it; the agent checks
again, after resolving links, because only the agent sees the machine's file system:

- a path must be absolute, without NUL or `..` components (`unsafe_path`);
- it is resolved with `realpath` (links followed) and must lie inside one of the request's
  `roots`, themselves resolved (`outside_roots`);
- an operation that creates or replaces something (write, commit, mkdir, rename, delete)
  acts on the entry itself: its parent directory is resolved and must be inside the roots, and
  a symbolic link as the last component is refused for writes (nothing is written through it).

Uploads land in a partial file next to the target (`.<name>.<upload id>.part`), appended at
the offset the server names; `commit` checks the SHA-256 and renames it over the target.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from steward.protocol import AgentStreamMessage, FileOp, FileRequest, FileResponse
from steward.protocol.streams import MAX_FILE_CHUNK

logger = logging.getLogger("steward.agent")

Emit = Callable[[AgentStreamMessage], Awaitable[None]]

_HASH_BLOCK = 1024 * 1024
_PART_SUFFIX = ".part"
_MAX_ERROR = 1000


class FileOpError(Exception):
    """A refusal with one of the protocol's error codes (see `FileResponse`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FileService:
    """Answers each `file.request` with one `file.response` through `emit`."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, message: FileRequest) -> None:
        """Start answering one request without blocking."""
        task = asyncio.get_running_loop().create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: FileRequest) -> None:
        try:
            response = await asyncio.to_thread(perform, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must still answer, not leave the server waiting
            logger.exception("file request %s failed", message.op)
            response = _refusal(message, "io_error", f"{type(exc).__name__}: {exc}")
        await self._emit(response)

    async def aclose(self) -> None:
        """Cancel requests in progress (the connection ended or the agent stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _refusal(message: FileRequest, code: str, error: str) -> FileResponse:
    return FileResponse(
        request_id=message.request_id, ok=False, error_code=code, error=error[:_MAX_ERROR]
    )


def perform(message: FileRequest) -> FileResponse:
    """Carry out one request (blocking) and describe the outcome."""
    try:
        result, data = _OPERATIONS[message.op](message)
    except FileOpError as exc:
        return _refusal(message, exc.code, exc.message)
    except OSError as exc:
        return _refusal(message, _os_error_code(exc), _describe(exc))
    return FileResponse(request_id=message.request_id, ok=True, result=result, data=data)


def _os_error_code(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    if isinstance(exc, FileExistsError):
        return "exists"
    if isinstance(exc, NotADirectoryError):
        return "not_a_directory"
    if isinstance(exc, IsADirectoryError):
        return "is_a_directory"
    if exc.errno == errno.ELOOP:
        return "unsafe_path"
    if exc.errno == errno.ENOTEMPTY:  # a directory removed without `recursive`
        return "exists"
    return "io_error"


def _describe(exc: OSError) -> str:
    return f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".strip(": ")


# ---- paths -----------------------------------------------------------------------------------


def _syntax(raw: str) -> str:
    """`raw` normalised, if it is an absolute path without NUL or `..`; else `unsafe_path`."""
    if not raw:
        raise FileOpError("unsafe_path", "empty path")
    if "\x00" in raw:
        raise FileOpError("unsafe_path", "NUL character in path")
    if not os.path.isabs(raw):
        raise FileOpError("unsafe_path", f"not an absolute path: {raw!r}")
    separators = "/\\" if os.name == "nt" else "/"
    parts = [raw]
    for separator in separators:
        parts = [piece for part in parts for piece in part.split(separator)]
    if ".." in parts:
        raise FileOpError("unsafe_path", f"'..' in path: {raw!r}")
    return os.path.normpath(raw)


def _inside(path: str, root: str) -> bool:
    path, root = os.path.normcase(path), os.path.normcase(root)
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


def _resolved_roots(roots: list[str]) -> list[str]:
    found: list[str] = []
    for root in roots:
        try:
            found.append(os.path.realpath(_syntax(root)))
        except FileOpError:
            continue  # a malformed root allows nothing
    return found


def _within(path: str, roots: list[str], raw: str) -> str:
    if not any(_inside(path, root) for root in roots):
        raise FileOpError("outside_roots", f"{raw!r} is outside the allowed directories")
    return path


def existing(raw: str, roots: list[str]) -> str:
    """An existing-or-not path with every link followed, inside the roots."""
    return _within(os.path.realpath(_syntax(raw)), _resolved_roots(roots), raw)


def entry(raw: str, roots: list[str], *, refuse_link: bool = True) -> str:
    """The entry itself (a last-component link is not followed): its parent is resolved and
    must be inside the roots; the entry may not be a root. With `refuse_link`, a link there is
    refused (nothing is written through one)."""
    normal = _syntax(raw)
    parent, name = os.path.split(normal)
    if not name:
        raise FileOpError("unsafe_path", f"no name in {raw!r}")
    resolved_roots = _resolved_roots(roots)
    path = os.path.join(os.path.realpath(parent), name)
    _within(path, resolved_roots, raw)
    if any(os.path.normcase(path) == os.path.normcase(root) for root in resolved_roots):
        raise FileOpError("unsafe_path", f"{raw!r} is an allowed root itself")
    if refuse_link and os.path.islink(path):
        raise FileOpError("unsafe_path", f"{raw!r} is a symbolic link")
    return path


def _partial_path(target: str, upload_id: str) -> str:
    if not upload_id:
        raise FileOpError("invalid_request", "upload_id is required")
    parent, name = os.path.split(target)
    return os.path.join(parent, f".{name}.{upload_id}{_PART_SUFFIX}")


# ---- entries ---------------------------------------------------------------------------------


@cache
def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name[:255]
    except (ImportError, KeyError, OverflowError):
        return str(uid)


@cache
def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name[:255]
    except (ImportError, KeyError, OverflowError):
        return str(gid)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def describe(path: str, name: str | None = None) -> dict[str, Any]:
    """A `FileEntry` as a dict (lstat: a link is reported as a link; its size is its
    target's when that is a file)."""
    info = os.lstat(path)
    kind = _kind(info.st_mode)
    size = info.st_size if kind == "file" else 0
    if kind == "link":
        with contextlib.suppress(OSError):
            target = os.stat(path)
            if stat.S_ISREG(target.st_mode):
                size = target.st_size
    owner = group = ""
    if os.name != "nt":
        owner, group = _user_name(info.st_uid), _group_name(info.st_gid)
    return {
        "name": name if name is not None else (os.path.basename(path) or path),
        "path": path,
        "kind": kind,
        "size": max(0, size),
        "modified": info.st_mtime,
        "mode": stat.filemode(info.st_mode),
        "owner": owner,
        "group": group,
    }


# ---- operations ------------------------------------------------------------------------------

Outcome = tuple[dict[str, Any], str]


def _list(message: FileRequest) -> Outcome:
    path = existing(message.path, message.roots)
    if not os.path.isdir(path):
        raise FileOpError("not_a_directory", f"{message.path!r} is not a directory")
    shown = _syntax(message.path)  # entries keep the path the user browsed, not the resolved
    entries: list[dict[str, Any]] = []
    truncated = False
    with os.scandir(path) as found:
        for item in sorted(found, key=lambda e: e.name):
            if len(entries) >= message.limit:
                truncated = True
                break
            with contextlib.suppress(OSError):  # vanished meanwhile, or unreadable
                described = describe(item.path, item.name)
                described["path"] = os.path.join(shown, item.name)
                entries.append(described)
    return {"entries": entries, "truncated": truncated}, ""


def _stat(message: FileRequest) -> Outcome:
    path = existing(message.path, message.roots)
    described = describe(path)
    described["path"] = _syntax(message.path)
    described["name"] = os.path.basename(described["path"]) or described["path"]
    return described, ""


def _open_regular(path: str, raw: str) -> int:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileOpError("is_a_directory", f"{raw!r} is not a regular file")
    return fd


def _read(message: FileRequest) -> Outcome:
    path = existing(message.path, message.roots)
    length = message.length or MAX_FILE_CHUNK
    fd = _open_regular(path, message.path)
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, message.offset, os.SEEK_SET)
        chunks: list[bytes] = []
        wanted = length
        while wanted > 0:
            piece = os.read(fd, wanted)
            if not piece:
                break
            chunks.append(piece)
            wanted -= len(piece)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    eof = message.offset + len(data) >= size
    return {"eof": eof, "size": size, "length": len(data)}, base64.b64encode(data).decode()


def _hash_file(path: str, raw: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fd = _open_regular(path, raw)
    try:
        while block := os.read(fd, _HASH_BLOCK):
            digest.update(block)
            size += len(block)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def _hash(message: FileRequest) -> Outcome:
    digest, size = _hash_file(existing(message.path, message.roots), message.path)
    return {"sha256": digest, "size": size}, ""


def _write(message: FileRequest) -> Outcome:
    target = entry(message.path, message.roots)
    partial = _partial_path(target, message.upload_id)
    try:
        data = base64.b64decode(message.data, validate=True)
    except (binascii.Error, ValueError):
        raise FileOpError("invalid_request", "data is not base64") from None
    if len(data) > MAX_FILE_CHUNK:
        raise FileOpError("too_large", f"a chunk holds at most {MAX_FILE_CHUNK} bytes")
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(partial, flags, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size != message.offset:
            raise FileOpError(
                "offset_mismatch", f"the partial upload holds {size} bytes, not {message.offset}"
            )
        os.lseek(fd, size, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        size += len(data)
    finally:
        os.close(fd)
    return {"size": size}, ""


def _partial(message: FileRequest) -> Outcome:
    target = entry(message.path, message.roots)
    partial = _partial_path(target, message.upload_id)
    try:
        info = os.lstat(partial)
    except FileNotFoundError:
        return {"size": 0}, ""
    if not stat.S_ISREG(info.st_mode):
        raise FileOpError("unsafe_path", "the partial upload is not a regular file")
    return {"size": info.st_size}, ""


def _commit(message: FileRequest) -> Outcome:
    target = entry(message.path, message.roots)
    partial = _partial_path(target, message.upload_id)
    if not os.path.isfile(partial) or os.path.islink(partial):
        raise FileOpError("not_found", "no partial upload with this id")
    digest, size = _hash_file(partial, message.path)
    if message.sha256 and digest != message.sha256:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise FileOpError("hash_mismatch", f"the upload's SHA-256 is {digest}")
    mode = 0o644
    if os.path.lexists(target):
        if os.path.isdir(target):
            raise FileOpError("is_a_directory", f"{message.path!r} is a directory")
        if not message.overwrite:
            raise FileOpError("exists", f"{message.path!r} exists")
        mode = stat.S_IMODE(os.stat(target).st_mode)
    with contextlib.suppress(OSError):
        os.chmod(partial, mode)
    os.replace(partial, target)
    return {"sha256": digest, "size": size}, ""


def _abort(message: FileRequest) -> Outcome:
    target = entry(message.path, message.roots)
    partial = _partial_path(target, message.upload_id)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial)
    return {}, ""


def _mkdir(message: FileRequest) -> Outcome:
    path = entry(message.path, message.roots)
    if os.path.lexists(path):
        if os.path.isdir(path) and message.recursive:
            return describe(path), ""
        raise FileOpError("exists", f"{message.path!r} exists")
    if message.recursive:
        os.makedirs(path, exist_ok=True)
    else:
        os.mkdir(path)
    return describe(path), ""


def _rename(message: FileRequest) -> Outcome:
    source = entry(message.path, message.roots, refuse_link=False)
    target = entry(message.target, message.roots)
    if not os.path.lexists(source):
        raise FileOpError("not_found", f"{message.path!r} does not exist")
    if os.path.lexists(target) and (not message.overwrite or os.path.isdir(target)):
        raise FileOpError("exists", f"{message.target!r} exists")
    if os.path.isdir(source) and _inside(target, source):
        raise FileOpError("invalid_request", "a directory cannot move into itself")
    os.replace(source, target)
    return describe(target), ""


def _delete(message: FileRequest) -> Outcome:
    path = entry(message.path, message.roots, refuse_link=False)
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        if message.recursive:
            shutil.rmtree(path)  # does not follow links inside
        else:
            os.rmdir(path)
    else:
        os.unlink(path)  # a link: the link goes, not what it points to
    return {}, ""


def _walk(message: FileRequest) -> Outcome:
    top = existing(message.path, message.roots)
    if not os.path.isdir(top):
        raise FileOpError("not_a_directory", f"{message.path!r} is not a directory")
    shown = _syntax(message.path)
    entries: list[dict[str, Any]] = []
    truncated = False
    for directory, dirs, files in os.walk(top):  # links to directories are not entered
        dirs.sort()
        for name in [*sorted(dirs), *sorted(files)]:
            if len(entries) >= message.limit:
                truncated = True
                break
            full = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                described = describe(full, name)
                described["path"] = os.path.join(shown, os.path.relpath(full, top))
                entries.append(described)
        if truncated:
            break
    return {"entries": entries, "truncated": truncated}, ""


_OPERATIONS: dict[FileOp, Callable[[FileRequest], Outcome]] = {
    FileOp.LIST: _list,
    FileOp.STAT: _stat,
    FileOp.READ: _read,
    FileOp.WRITE: _write,
    FileOp.PARTIAL: _partial,
    FileOp.COMMIT: _commit,
    FileOp.ABORT: _abort,
    FileOp.HASH: _hash,
    FileOp.MKDIR: _mkdir,
    FileOp.RENAME: _rename,
    FileOp.DELETE: _delete,
    FileOp.WALK: _walk,
}
