"""Downloads and uploads in chunks: never a whole file in the server's memory.

Download: the agent hashes the file first (its SHA-256 goes out in a header), then chunks are
read one after another and passed on; at the end the bytes sent are checked against that hash
(a file that changed meanwhile ends the response early, so the client sees a broken transfer
rather than a wrong file). `Range: bytes=N-` resumes.

Upload: an upload session (a row: device, path, size) is made first; chunks of at most
`MAX_FILE_CHUNK` bytes are PUT at their offset and written straight into the agent's partial
file; a dropped client asks how much arrived (`received`, from the agent) and carries on from
there; `finish` makes the agent check the SHA-256 and move the file into place.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from steward.protocol import MAX_FILE_CHUNK
from steward.server.db.base import utcnow
from steward.server.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StewardError,
)
from steward.server.files.models import FileUpload, UploadStatus
from steward.server.files.remote import AgentFileError
from steward.server.files.schemas import UploadPublic
from steward.server.files.service import DeviceFiles

_RANGE = re.compile(r"^bytes=(\d{1,19})-(\d{0,19})$")


class RangeNotSatisfiable(InvalidInput):
    """The requested range is outside the file."""

    status_code = 416
    code = "range_not_satisfiable"


@dataclass(frozen=True, slots=True)
class Download:
    path: str
    name: str
    size: int  # the whole file
    sha256: str  # the whole file
    start: int
    end: int  # exclusive
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start


def parse_range(header: str | None, size: int) -> tuple[int, int, bool]:
    """(start, end exclusive, partial) for a `Range` header (one `bytes=N-[M]` range)."""
    if not header:
        return 0, size, False
    match = _RANGE.match(header.strip())
    if match is None:
        raise RangeNotSatisfiable("only one range of the form bytes=N- or bytes=N-M is supported")
    start = int(match.group(1))
    end = int(match.group(2)) + 1 if match.group(2) else size
    end = min(end, size)
    if start >= size or start >= end:
        if start == 0 and size == 0:
            return 0, 0, False
        raise RangeNotSatisfiable(f"the file has {size} bytes")
    return start, end, True


async def prepare_download(files: DeviceFiles, raw: str, range_header: str | None) -> Download:
    path = files.path(raw)
    entry = await files.remote.stat(path)
    if entry.kind == "dir":
        raise InvalidInput(
            "a directory cannot be downloaded; back it up instead", code="is_a_directory"
        )
    sha256, size = await files.remote.hash(path)
    start, end, partial = parse_range(range_header, size)
    return Download(path, entry.name, size, sha256, start, end, partial)


async def stream_download(files: DeviceFiles, download: Download) -> AsyncIterator[bytes]:
    """The bytes of the range, chunk by chunk. A whole-file download is checked against the
    agent's hash at the end; a file that changed size midway stops the stream."""
    digest = hashlib.sha256() if not download.partial else None
    offset = download.start
    while offset < download.end:
        wanted = min(MAX_FILE_CHUNK, download.end - offset)
        chunk = await files.remote.read(download.path, offset, wanted)
        if chunk.size != download.size or not chunk.data:
            raise AgentFileError("the file changed during the download", code="file_changed")
        if digest is not None:
            digest.update(chunk.data)
        offset += len(chunk.data)
        yield chunk.data
    if digest is not None and digest.hexdigest() != download.sha256:
        raise AgentFileError("the file changed during the download", code="hash_mismatch")


# ---- uploads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadRef:
    """What an upload session says, read in a short transaction (the agent is asked later)."""

    id: uuid.UUID
    device_id: uuid.UUID
    path: str
    size: int
    overwrite: bool
    status: str
    sha256: str

    @property
    def upload_id(self) -> str:
        return self.id.hex


def _public(row: FileUpload | UploadRef, received: int) -> UploadPublic:
    return UploadPublic(
        id=row.id,
        device_id=row.device_id,
        path=row.path,
        size=row.size,
        received=received,
        status=row.status,
        chunk_bytes=MAX_FILE_CHUNK,
        sha256=row.sha256,
    )


async def create_upload(
    session: AsyncSession, files: DeviceFiles, raw: str, size: int, *, overwrite: bool
) -> UploadPublic:
    """A new upload session (the caller commits). Refused over the tenant's size limit, and
    when the file exists unless `overwrite`."""
    path = files.path(raw)
    limit = files.policy.max_upload_bytes
    if size > limit:
        raise PayloadTooLarge(
            f"uploads are limited to {limit} bytes in this organisation", code="upload_too_large"
        )
    upload_id = uuid.uuid4()
    # The agent checks the place (links resolved) before anything is sent to it.
    await files.remote.partial(path, upload_id.hex)
    if not overwrite:
        try:
            await files.remote.stat(path)
        except NotFound:
            pass
        else:
            raise Conflict(f"{path!r} exists", code="exists")
    row = FileUpload(
        id=upload_id,
        device_id=files.device.id,
        path=path,
        size=size,
        overwrite=overwrite,
        status=UploadStatus.OPEN,
        created_by=files.actor,
    )
    session.add(row)
    await session.flush()
    return _public(row, 0)


async def get_upload(session: AsyncSession, files: DeviceFiles, upload_id: uuid.UUID) -> UploadRef:
    """The upload session of this device; the transaction ends (released for the agent)."""
    row = await session.get(FileUpload, upload_id)
    if row is None or row.device_id != files.device.id:
        raise NotFound("no such upload", code="upload_not_found")
    ref = UploadRef(
        row.id, row.device_id, row.path, row.size, row.overwrite, row.status, row.sha256
    )
    await session.rollback()
    return ref


async def _mark(session: AsyncSession, ref: UploadRef, status: str, sha256: str = "") -> None:
    row = await session.get(FileUpload, ref.id)
    if row is not None:
        row.status = status
        row.sha256 = sha256
        row.finished_at = utcnow()
        await session.flush()


class UploadExpired(StewardError):
    """The upload stayed open too long and was expired (its partial file removed)."""

    status_code = 410
    code = "upload_expired"


def _open(ref: UploadRef) -> None:
    if ref.status == UploadStatus.EXPIRED:
        raise UploadExpired("the upload was left open too long and expired; start a new one")
    if ref.status != UploadStatus.OPEN:
        raise Conflict(f"the upload is {ref.status}", code=f"upload_{ref.status}")


async def upload_status(files: DeviceFiles, ref: UploadRef) -> UploadPublic:
    received = ref.size if ref.status == UploadStatus.DONE else 0
    if ref.status == UploadStatus.OPEN:
        received = await files.remote.partial(files.path(ref.path), ref.upload_id)
    return _public(ref, received)


async def write_chunk(files: DeviceFiles, ref: UploadRef, offset: int, data: bytes) -> UploadPublic:
    _open(ref)
    if len(data) > MAX_FILE_CHUNK:
        raise PayloadTooLarge(
            f"a chunk holds at most {MAX_FILE_CHUNK} bytes", code="chunk_too_large"
        )
    if offset + len(data) > ref.size:
        raise PayloadTooLarge(
            "the chunk goes past the upload's declared size", code="upload_too_large"
        )
    received = await files.remote.write(files.path(ref.path), ref.upload_id, offset, data)
    return _public(ref, received)


async def finish_upload(
    session: AsyncSession, files: DeviceFiles, ref: UploadRef, sha256: str
) -> UploadPublic:
    """Check the size and hash on the agent and move the file into place (the caller
    commits)."""
    _open(ref)
    path = files.path(ref.path)
    received = await files.remote.partial(path, ref.upload_id)
    if received != ref.size:
        raise Conflict(
            f"{received} of {ref.size} bytes arrived; send the rest first",
            code="upload_incomplete",
        )
    digest, size = await files.remote.commit(path, ref.upload_id, sha256, overwrite=ref.overwrite)
    await _mark(session, ref, UploadStatus.DONE, digest)
    done = {"status": UploadStatus.DONE, "sha256": digest}
    return UploadPublic(**(_public(ref, size).model_dump() | done))


async def abort_upload(session: AsyncSession, files: DeviceFiles, ref: UploadRef) -> UploadPublic:
    _open(ref)
    await files.remote.abort(files.path(ref.path), ref.upload_id)
    await _mark(session, ref, UploadStatus.ABORTED)
    return UploadPublic(**(_public(ref, 0).model_dump() | {"status": UploadStatus.ABORTED}))
