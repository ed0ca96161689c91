"""The file API of a device: browse, transfer (chunked, resumable), edit. Thin: the rules are in
`service.py`, `transfers.py` and `editor.py`; every read and write is audited here, refusals
included."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from steward.protocol import MAX_FILE_CHUNK
from steward.protocol.streams import MAX_PATH_CHARS
from steward.server.accounts.permissions import Permission as P
from steward.server.accounts.principal import Principal
from steward.server.audit.auditor import Auditor
from steward.server.deps import AuditorDep, RuntimeDep, SessionDep, require
from steward.server.errors import PayloadTooLarge, StewardError
from steward.server.files import editor, service, transfers
from steward.server.files.schemas import (
    DeleteBody,
    EntryPublic,
    Listing,
    MkdirBody,
    RenameBody,
    RevertBody,
    TextFile,
    TextSave,
    TextSaved,
    UploadCreate,
    UploadFinish,
    UploadPublic,
)
from steward.server.files.service import DeviceFiles

Reader = Annotated[Principal, require(P.FILE_READ)]
Writer = Annotated[Principal, require(P.FILE_WRITE)]
PathQuery = Annotated[str, Query(min_length=1, max_length=MAX_PATH_CHARS)]
OptionalPath = Annotated[str | None, Query(max_length=MAX_PATH_CHARS)]

router = APIRouter(prefix="/api/v1/devices/{device_id}/files", tags=["files"])

T = TypeVar("T")


async def audited(
    auditor: Auditor,
    action: str,
    device_id: uuid.UUID,
    target: str,
    work: Awaitable[T],
    *,
    risk: str = "low",
    detail: dict[str, Any] | None = None,
) -> T:
    """`work`, recorded in the audit log whether it succeeds or is refused."""
    target = printable(target)
    try:
        result = await work
    except StewardError as exc:
        await auditor(
            action,
            "blocked" if exc.status_code in (403, 422) else "failure",
            target=target[:500],
            device_id=device_id,
            risk=risk,
            detail={**(detail or {}), "error": exc.code},
        )
        raise
    await auditor(action, target=target[:500], device_id=device_id, risk=risk, detail=detail)
    return result


def printable(text: str, limit: int = 500) -> str:
    """A path as the audit log keeps it: control characters (a NUL in a refused path) shown
    as escapes, not stored (PostgreSQL text refuses NUL)."""
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])
    return shown[:limit]


async def open_files(
    runtime: Any, session: Any, principal: Principal, permission: P, device_id: uuid.UUID
) -> DeviceFiles:
    return await service.device_files(session, runtime.hub.relay, principal, permission, device_id)


@router.get("", response_model=Listing)
async def list_directory(
    device_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
    path: OptionalPath = None,
) -> Listing:
    """A directory's entries (the first allowed root without `path`)."""
    files = await open_files(runtime, session, principal, P.FILE_READ, device_id)
    work = service.list_directory(files, path)
    return await audited(auditor, "file.list", device_id, path or "", work)


@router.get("/stat", response_model=EntryPublic)
async def stat(
    device_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
    path: PathQuery,
) -> EntryPublic:
    files = await open_files(runtime, session, principal, P.FILE_READ, device_id)
    return await audited(auditor, "file.stat", device_id, path, service.stat(files, path))


@router.get("/download", response_class=StreamingResponse)
async def download(
    device_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
    path: PathQuery,
    range_header: Annotated[str | None, Header(alias="range", max_length=100)] = None,
) -> StreamingResponse:
    """The file's bytes, streamed from the agent chunk by chunk; `X-Content-SHA256` is the
    whole file's hash; `Range: bytes=N-` resumes."""
    files = await open_files(runtime, session, principal, P.FILE_READ, device_id)
    prepared = await audited(
        auditor,
        "file.download",
        device_id,
        path,
        transfers.prepare_download(files, path, range_header),
        risk="medium",
        detail={"range": range_header or ""},
    )
    return download_response(files, prepared)


def download_response(files: DeviceFiles, prepared: transfers.Download) -> StreamingResponse:
    headers = {
        "Content-Length": str(prepared.length),
        "Accept-Ranges": "bytes",
        "X-Content-SHA256": prepared.sha256,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(prepared.name, safe='')}",
        "Cache-Control": "no-store",
    }
    if prepared.partial:
        headers["Content-Range"] = f"bytes {prepared.start}-{prepared.end - 1}/{prepared.size}"
    return StreamingResponse(
        transfers.stream_download(files, prepared),
        status_code=206 if prepared.partial else 200,
        media_type="application/octet-stream",
        headers=headers,
    )


@router.post("/mkdir", status_code=204)
async def make_directory(
    device_id: uuid.UUID,
    body: MkdirBody,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> Response:
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    work = service.make_directory(files, body.path, parents=body.parents)
    await audited(auditor, "file.mkdir", device_id, body.path, work)
    return Response(status_code=204)


@router.post("/rename", status_code=204)
async def rename(
    device_id: uuid.UUID,
    body: RenameBody,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> Response:
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    work = service.rename(files, body.path, body.target)
    await audited(
        auditor, "file.rename", device_id, body.path, work, risk="medium",
        detail={"target": printable(body.target)},
    )  # fmt: skip
    return Response(status_code=204)


@router.post("/delete", status_code=204)
async def delete(
    device_id: uuid.UUID,
    body: DeleteBody,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> Response:
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    work = service.delete(files, body.path, recursive=body.recursive)
    await audited(
        auditor, "file.delete", device_id, body.path, work, risk="high",
        detail={"recursive": body.recursive},
    )  # fmt: skip
    return Response(status_code=204)


# ---- uploads ---------------------------------------------------------------------------------


@router.post("/uploads", response_model=UploadPublic, status_code=201)
async def create_upload(
    device_id: uuid.UUID,
    body: UploadCreate,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> UploadPublic:
    """Start an upload of `size` bytes to `path`; then PUT the chunks, then `finish`."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    work = transfers.create_upload(session, files, body.path, body.size, overwrite=body.overwrite)
    created = await work_then_commit(session, work)
    await auditor(
        "file.upload.start", target=created.path, device_id=device_id, risk="medium",
        detail={"upload_id": str(created.id), "size": created.size},
    )  # fmt: skip
    return created


async def work_then_commit(session: Any, work: Awaitable[T]) -> T:
    try:
        result = await work
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
    return result


@router.get("/uploads/{upload_id}", response_model=UploadPublic)
async def upload_status(
    device_id: uuid.UUID,
    upload_id: uuid.UUID,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> UploadPublic:
    """How much of the upload arrived (resume from `received`)."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    return await transfers.upload_status(files, ref)


@router.put("/uploads/{upload_id}", response_model=UploadPublic)
async def upload_chunk(
    device_id: uuid.UUID,
    upload_id: uuid.UUID,
    request: Request,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    offset: Annotated[int, Query(ge=0, le=2**62)],
) -> UploadPublic:
    """One chunk (the raw body, at most 1 MiB) at `offset`, which must be what arrived so far."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    data = await read_chunk(request)
    return await transfers.write_chunk(files, ref, offset, data)


async def read_chunk(request: Request) -> bytes:
    """The request body, refused past one chunk (whatever the app's general limit)."""
    received = bytearray()
    async for piece in request.stream():
        received += piece
        if len(received) > MAX_FILE_CHUNK:
            raise PayloadTooLarge(
                f"a chunk holds at most {MAX_FILE_CHUNK} bytes", code="chunk_too_large"
            )
    return bytes(received)


@router.post("/uploads/{upload_id}/finish", response_model=UploadPublic)
async def finish_upload(
    device_id: uuid.UUID,
    upload_id: uuid.UUID,
    body: UploadFinish,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> UploadPublic:
    """Check the SHA-256 on the device and put the file in place."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    work = work_then_commit(session, transfers.finish_upload(session, files, ref, body.sha256))
    return await audited(
        auditor, "file.upload", device_id, ref.path, work, risk="medium",
        detail={"upload_id": str(upload_id), "size": ref.size, "sha256": body.sha256},
    )  # fmt: skip


@router.delete("/uploads/{upload_id}", response_model=UploadPublic)
async def abort_upload(
    device_id: uuid.UUID,
    upload_id: uuid.UUID,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> UploadPublic:
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    work = work_then_commit(session, transfers.abort_upload(session, files, ref))
    return await audited(
        auditor, "file.upload.abort", device_id, ref.path, work,
        detail={"upload_id": str(upload_id)},
    )  # fmt: skip


# ---- editor ----------------------------------------------------------------------------------


@router.get("/text", response_model=TextFile)
async def read_text(
    device_id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
    path: PathQuery,
) -> TextFile:
    """A text file for the editor (refused when binary or over the tenant's editor limit)."""
    files = await open_files(runtime, session, principal, P.FILE_READ, device_id)
    return await audited(auditor, "file.read", device_id, path, editor.read_text(files, path))


@router.put("/text", response_model=TextSaved)
async def save_text(
    device_id: uuid.UUID,
    body: TextSave,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> TextSaved:
    """Save from the editor: the version on the device is backed up first."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, principal.tenant_id)
    work = editor.save_text(session, store, files, body.path, body.content, body.base_sha256)
    return await audited(
        auditor, "file.edit", device_id, body.path, work_then_commit(session, work),
        risk="medium",
    )  # fmt: skip


@router.post("/text/revert", response_model=TextSaved)
async def revert_text(
    device_id: uuid.UUID,
    body: RevertBody,
    principal: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    auditor: AuditorDep,
) -> TextSaved:
    """Put back the previous version (again: the one before it)."""
    files = await open_files(runtime, session, principal, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, principal.tenant_id)
    saved, _ref = await audited(
        auditor, "file.revert", device_id, body.path,
        editor.revert_text(session, store, files, body.path), risk="medium",
    )  # fmt: skip
    return saved
