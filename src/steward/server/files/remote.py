"""One device's files, through its agent: each call is one `file.request` over the relay.

Everything the agent answers is untrusted: entries pass `FileEntry`, data is decoded and its
length checked, and the agent's refusals become the domain's errors (with its message cut).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from steward.protocol import MAX_FILE_CHUNK, FileEntry, FileOp, FileRequest, FileResponse
from steward.server.errors import Conflict, InvalidInput, NotFound, PermissionDenied, StewardError

HASH_TIMEOUT_S = 300.0  # hashing a few GiB on a slow disk
MAX_ENTRIES = 5000


class Relay(Protocol):
    async def request(
        self, device_id: uuid.UUID, request: FileRequest, *, timeout_s: float = ...
    ) -> FileResponse: ...


class AgentFileError(StewardError):
    """The agent could not do it."""

    status_code = 502
    code = "agent_error"


def _error(response: FileResponse) -> StewardError:
    code = response.error_code or "io_error"
    message = f"the device says: {response.error[:300] or code}"
    if code == "not_found":
        return NotFound(message, code="file_not_found")
    if code in {"outside_roots", "permission_denied"}:
        return PermissionDenied(message, code=code)
    if code in {"unsafe_path", "invalid_request", "not_a_directory", "is_a_directory"}:
        return InvalidInput(message, code=code)
    if code in {"exists", "offset_mismatch", "hash_mismatch"}:
        return Conflict(message, code=code)
    if code == "too_large":
        return InvalidInput(message, code="too_large")
    return AgentFileError(message, code="agent_io_error")


def _bad_answer(what: str) -> AgentFileError:
    return AgentFileError(f"the agent sent a malformed answer ({what})", code="agent_bad_answer")


def _int(result: dict[str, Any], key: str) -> int:
    value = result.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad_answer(key)
    return value


@dataclass(frozen=True, slots=True)
class Chunk:
    data: bytes
    size: int  # the whole file's, as the agent saw it
    eof: bool


@dataclass(frozen=True, slots=True)
class RemoteFiles:
    relay: Relay
    device_id: uuid.UUID
    roots: list[str]
    timeout_s: float = 30.0

    async def ask(
        self, op: FileOp, path: str, *, timeout_s: float | None = None, **fields: Any
    ) -> FileResponse:
        request = FileRequest(
            request_id=uuid.uuid4().hex, op=op, path=path, roots=self.roots, **fields
        )
        response = await self.relay.request(
            self.device_id, request, timeout_s=timeout_s or self.timeout_s
        )
        if not response.ok:
            raise _error(response)
        return response

    async def listdir(self, path: str, limit: int = MAX_ENTRIES) -> tuple[list[FileEntry], bool]:
        result = (await self.ask(FileOp.LIST, path, limit=limit)).result
        return _entries(result, limit), bool(result.get("truncated"))

    async def walk(self, path: str, limit: int) -> tuple[list[FileEntry], bool]:
        result = (await self.ask(FileOp.WALK, path, limit=limit, timeout_s=120.0)).result
        return _entries(result, limit), bool(result.get("truncated"))

    async def stat(self, path: str) -> FileEntry:
        try:
            return FileEntry.model_validate((await self.ask(FileOp.STAT, path)).result)
        except ValidationError:
            raise _bad_answer("entry") from None

    async def read(self, path: str, offset: int, length: int = MAX_FILE_CHUNK) -> Chunk:
        response = await self.ask(FileOp.READ, path, offset=offset, length=length)
        try:
            data = base64.b64decode(response.data, validate=True)
        except (binascii.Error, ValueError):
            raise _bad_answer("data") from None
        if len(data) > length:
            raise _bad_answer("chunk too long")
        return Chunk(data, _int(response.result, "size"), bool(response.result.get("eof")))

    async def hash(self, path: str) -> tuple[str, int]:
        result = (await self.ask(FileOp.HASH, path, timeout_s=HASH_TIMEOUT_S)).result
        digest = result.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64:
            raise _bad_answer("sha256")
        return digest.lower(), _int(result, "size")

    async def write(self, path: str, upload_id: str, offset: int, data: bytes) -> int:
        response = await self.ask(
            FileOp.WRITE,
            path,
            upload_id=upload_id,
            offset=offset,
            data=base64.b64encode(data).decode(),
        )
        return _int(response.result, "size")

    async def partial(self, path: str, upload_id: str) -> int:
        return _int((await self.ask(FileOp.PARTIAL, path, upload_id=upload_id)).result, "size")

    async def commit(
        self, path: str, upload_id: str, sha256: str, *, overwrite: bool
    ) -> tuple[str, int]:
        result = (
            await self.ask(
                FileOp.COMMIT,
                path,
                upload_id=upload_id,
                sha256=sha256,
                overwrite=overwrite,
                timeout_s=HASH_TIMEOUT_S,
            )
        ).result
        return str(result.get("sha256", ""))[:64], _int(result, "size")

    async def abort(self, path: str, upload_id: str) -> None:
        await self.ask(FileOp.ABORT, path, upload_id=upload_id)

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        await self.ask(FileOp.MKDIR, path, recursive=parents)

    async def rename(self, path: str, target: str) -> None:
        await self.ask(FileOp.RENAME, path, target=target)

    async def delete(self, path: str, *, recursive: bool) -> None:
        await self.ask(FileOp.DELETE, path, recursive=recursive, timeout_s=120.0)

    async def put(self, path: str, data: bytes, *, overwrite: bool) -> str:
        """A small file written in one go (chunked, committed with its hash)."""
        upload_id = uuid.uuid4().hex
        offset = 0
        try:
            while True:
                piece = data[offset : offset + MAX_FILE_CHUNK]
                if piece or offset == 0:
                    offset = await self.write(path, upload_id, offset, piece)
                if offset >= len(data):
                    break
            digest = hashlib.sha256(data).hexdigest()
            await self.commit(path, upload_id, digest, overwrite=overwrite)
        except BaseException:
            with contextlib.suppress(StewardError):
                await self.abort(path, upload_id)
            raise
        return digest


def _entries(result: dict[str, Any], limit: int) -> list[FileEntry]:
    raw = result.get("entries")
    if not isinstance(raw, list) or len(raw) > limit:
        raise _bad_answer("entries")
    try:
        return [FileEntry.model_validate(item) for item in raw]
    except ValidationError:
        raise _bad_answer("entry") from None
