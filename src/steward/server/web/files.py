"""File pages of a device: the browser, the editor and the backups; forms for make directory,
rename, delete, back up and restore; JSON routes for the page scripts (chunked uploads, editor
save and revert) with the session cookie and the CSRF header.

The rules are the file domain's (`steward.server.files`), exactly as the API applies them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from steward.protocol import MAX_FILE_CHUNK
from steward.protocol.streams import MAX_PATH_CHARS
from steward.server.accounts.permissions import Permission as P
from steward.server.deps import RuntimeDep, SessionDep, auditor_for
from steward.server.devices import service as devices
from steward.server.errors import StewardError
from steward.server.files import backups, editor, service, transfers
from steward.server.files.routes import (
    audited,
    download_response,
    printable,
    read_chunk,
    work_then_commit,
)
from steward.server.files.schemas import (
    RevertBody,
    TextSave,
    TextSaved,
    UploadCreate,
    UploadFinish,
    UploadPublic,
)
from steward.server.files.service import DeviceFiles
from steward.server.web.page import Page, PageRoute, require_page
from steward.server.web.security import SAFE_METHODS, add_security_headers, verify_csrf

Reader = Annotated[Page, require_page(P.FILE_READ)]
Writer = Annotated[Page, require_page(P.FILE_WRITE)]
PathParam = Annotated[str, Query(max_length=MAX_PATH_CHARS)]
PathField = Annotated[str, Form(min_length=1, max_length=MAX_PATH_CHARS)]

# CodeMirror 5 modes by file extension (the folder under /static/vendor/codemirror/).
EDITOR_MODES = {
    "sh": "shell", "bash": "shell", "zsh": "shell", "py": "python", "js": "javascript",
    "json": "javascript", "ts": "javascript", "xml": "xml", "html": "xml", "htm": "xml",
    "svg": "xml", "yaml": "yaml", "yml": "yaml", "ini": "properties", "conf": "properties",
    "cfg": "properties", "properties": "properties", "env": "properties", "ps1": "powershell",
    "psm1": "powershell", "sql": "sql", "md": "markdown", "css": "css",
}  # fmt: skip


class ScriptRoute(APIRoute):
    """JSON routes for page scripts: the session cookie, CSRF on unsafe methods, JSON errors
    (the app's handlers), the console's security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            if request.method not in SAFE_METHODS:
                await verify_csrf(request)
            response = await handler(request)
            add_security_headers(response)
            return response

        return handle


router = APIRouter(route_class=PageRoute, include_in_schema=False)
script_router = APIRouter(route_class=ScriptRoute, include_in_schema=False)


async def _files(
    page: Page, session: Any, runtime: Any, permission: P, device_id: uuid.UUID
) -> DeviceFiles:
    return await service.device_files(session, runtime.hub.relay, page.me, permission, device_id)


def _auditor(page: Page, runtime: Any) -> Any:
    return auditor_for(page.request, runtime, page.me)


def _browse_url(device_id: uuid.UUID, path: str, **extra: str) -> str:
    return f"/devices/{device_id}/files?{urlencode({'path': path, **extra})}"


# ---- pages -----------------------------------------------------------------------------------


@router.get("/devices/{device_id}/files")
async def browser(
    device_id: uuid.UUID,
    page: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    path: PathParam = "",
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    device = await devices.get_device(session, page.me, device_id, P.FILE_READ)
    files = await _files(page, session, runtime, P.FILE_READ, device_id)
    listing = error = None
    try:
        work = service.list_directory(files, path or None)
        listing = await audited(_auditor(page, runtime), "file.list", device_id, path, work)
    except StewardError as exc:
        error = exc
    shown = listing.path if listing else (path or service.default_path(files))
    return page.render(
        "files/browser.html",
        device=device,
        listing=listing,
        error=error,
        path=shown,
        crumbs=_crumbs(files, shown),
        roots=files.roots,
        done=done,
        chunk_bytes=MAX_FILE_CHUNK,
        max_upload_bytes=files.policy.max_upload_bytes,
        separator="\\" if "\\" in shown else "/",
    )


def _crumbs(files: DeviceFiles, path: str) -> list[tuple[str, str]]:
    """(label, path) from the root that holds `path` down to it."""
    root = next((r for r in files.roots if path == r or path.startswith(r.rstrip("/\\") + "/")
                 or path.startswith(r.rstrip("/\\") + "\\")), None)  # fmt: skip
    if root is None:
        return [(path, path)]
    crumbs = [(root, root)]
    separator = "\\" if "\\" in root else "/"
    current = root.rstrip(separator)
    for part in [p for p in path[len(root) :].split(separator) if p]:
        current = f"{current}{separator}{part}"
        crumbs.append((part, current))
    return crumbs


@router.get("/devices/{device_id}/files/download")
async def download(
    device_id: uuid.UUID,
    page: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    path: Annotated[str, Query(min_length=1, max_length=MAX_PATH_CHARS)],
) -> Response:
    files = await _files(page, session, runtime, P.FILE_READ, device_id)
    range_header = page.request.headers.get("range")
    prepared = await audited(
        _auditor(page, runtime), "file.download", device_id, path,
        transfers.prepare_download(files, path, range_header), risk="medium",
    )  # fmt: skip
    response: StreamingResponse = download_response(files, prepared)
    return response


@router.get("/devices/{device_id}/files/edit")
async def edit(
    device_id: uuid.UUID,
    page: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    path: Annotated[str, Query(min_length=1, max_length=MAX_PATH_CHARS)],
) -> Response:
    device = await devices.get_device(session, page.me, device_id, P.FILE_READ)
    files = await _files(page, session, runtime, P.FILE_READ, device_id)
    text = error = None
    try:
        text = await audited(
            _auditor(page, runtime), "file.read", device_id, path, editor.read_text(files, path)
        )
    except StewardError as exc:
        error = exc
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return page.render(
        "files/editor.html",
        device=device,
        path=path,
        text=text,
        error=error,
        mode=EDITOR_MODES.get(extension, ""),
        directory=files.parent(path) or path,
    )


@router.get("/devices/{device_id}/backups")
async def backup_list(
    device_id: uuid.UUID,
    page: Reader,
    session: SessionDep,
    path: PathParam = "",
    done: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    device = await devices.get_device(session, page.me, device_id, P.FILE_READ)
    found = await backups.list_backups(session, device_id, path or None)
    targets, _total = await devices.list_devices(session, page.me, limit=200)
    return page.render(
        "files/backups.html",
        device=device,
        backups=found,
        path=path,
        done=done,
        targets=targets,
    )


# ---- forms -----------------------------------------------------------------------------------


def _back(device_id: uuid.UUID, directory: str, done: str) -> Response:
    return RedirectResponse(_browse_url(device_id, directory, done=done), status_code=303)


@router.post("/devices/{device_id}/files/mkdir")
async def make_directory(
    device_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    directory: PathField,
    name: Annotated[str, Form(min_length=1, max_length=255)],
) -> Response:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    path = _child(directory, name)
    work = service.make_directory(files, path, parents=False)
    await audited(_auditor(page, runtime), "file.mkdir", device_id, path, work)
    return _back(device_id, directory, "mkdir")


def _child(directory: str, name: str) -> str:
    """`name` in `directory`: a plain name only (no separator), the rest is the policy's."""
    if "/" in name or "\\" in name or name in {".", ".."}:
        from steward.server.errors import InvalidInput

        raise InvalidInput("a name cannot contain / or \\", code="unsafe_path")
    separator = "\\" if "\\" in directory else "/"
    return f"{directory.rstrip(separator)}{separator}{name}"


@router.post("/devices/{device_id}/files/rename")
async def rename(
    device_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    path: PathField,
    name: Annotated[str, Form(min_length=1, max_length=255)],
) -> Response:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    directory = files.parent(files.path(path)) or path
    target = _child(directory, name)
    await audited(
        _auditor(page, runtime), "file.rename", device_id, path,
        service.rename(files, path, target), risk="medium", detail={"target": printable(target)},
    )  # fmt: skip
    return _back(device_id, directory, "renamed")


@router.post("/devices/{device_id}/files/delete")
async def delete(
    device_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    path: PathField,
) -> Response:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    directory = files.parent(files.path(path)) or path
    await audited(
        _auditor(page, runtime), "file.delete", device_id, path,
        service.delete(files, path, recursive=True), risk="high",
    )  # fmt: skip
    return _back(device_id, directory, "deleted")


@router.post("/devices/{device_id}/backups")
async def snapshot(
    device_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    path: PathField,
) -> Response:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, page.me.tenant_id)

    async def work() -> None:
        row = await backups.snapshot(store, files, path, reason="manual", created_by=page.me.actor)
        session.add(row)
        await session.flush()
        await backups.apply_retention(session, store, files.policy, device_id, row.source_path)

    await audited(
        _auditor(page, runtime), "file.backup", device_id, path,
        work_then_commit(session, work()), risk="medium",
    )  # fmt: skip
    query = urlencode({"path": files.path(path), "done": "backup"})
    return RedirectResponse(f"/devices/{device_id}/backups?{query}", status_code=303)


@router.post("/backups/{backup_id}/restore")
async def restore(
    backup_id: uuid.UUID,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    device_id: Annotated[uuid.UUID, Form()],
    path: Annotated[str, Form(max_length=MAX_PATH_CHARS)] = "",
) -> Response:
    row = await backups.get_backup(session, backup_id)
    await devices.get_device(session, page.me, row.device_id, P.FILE_READ)
    source_device = row.device_id
    ref = backups.BackupRef.of(row)
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, page.me.tenant_id)
    await audited(
        _auditor(page, runtime), "file.restore", device_id, path or ref.source_path,
        backups.restore(store, ref, files, path), risk="high",
        detail={"backup_id": str(backup_id)},
    )  # fmt: skip
    return RedirectResponse(f"/devices/{source_device}/backups?done=restored", status_code=303)


# ---- JSON for the page scripts ---------------------------------------------------------------


@script_router.post("/devices/{device_id}/files/uploads", status_code=201)
async def create_upload(
    device_id: uuid.UUID, body: UploadCreate, page: Writer, session: SessionDep, runtime: RuntimeDep
) -> UploadPublic:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    work = transfers.create_upload(session, files, body.path, body.size, overwrite=body.overwrite)
    created = await work_then_commit(session, work)
    await _auditor(page, runtime)(
        "file.upload.start", target=created.path, device_id=device_id, risk="medium",
        detail={"upload_id": str(created.id), "size": created.size},
    )  # fmt: skip
    return created


@script_router.get("/devices/{device_id}/files/uploads/{upload_id}")
async def upload_status(
    device_id: uuid.UUID, upload_id: uuid.UUID, page: Writer, session: SessionDep,
    runtime: RuntimeDep,
) -> UploadPublic:  # fmt: skip
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    return await transfers.upload_status(files, ref)


@script_router.put("/devices/{device_id}/files/uploads/{upload_id}")
async def upload_chunk(
    device_id: uuid.UUID,
    upload_id: uuid.UUID,
    request: Request,
    page: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    offset: Annotated[int, Query(ge=0, le=2**62)],
) -> UploadPublic:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    return await transfers.write_chunk(files, ref, offset, await read_chunk(request))


@script_router.post("/devices/{device_id}/files/uploads/{upload_id}/finish")
async def finish_upload(
    device_id: uuid.UUID, upload_id: uuid.UUID, body: UploadFinish, page: Writer,
    session: SessionDep, runtime: RuntimeDep,
) -> UploadPublic:  # fmt: skip
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    work = work_then_commit(session, transfers.finish_upload(session, files, ref, body.sha256))
    return await audited(
        _auditor(page, runtime), "file.upload", device_id, ref.path, work, risk="medium",
        detail={"upload_id": str(upload_id), "size": ref.size, "sha256": body.sha256},
    )  # fmt: skip


@script_router.delete("/devices/{device_id}/files/uploads/{upload_id}")
async def abort_upload(
    device_id: uuid.UUID, upload_id: uuid.UUID, page: Writer, session: SessionDep,
    runtime: RuntimeDep,
) -> UploadPublic:  # fmt: skip
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    ref = await transfers.get_upload(session, files, upload_id)
    work = work_then_commit(session, transfers.abort_upload(session, files, ref))
    return await audited(_auditor(page, runtime), "file.upload.abort", device_id, ref.path, work)


@script_router.put("/devices/{device_id}/files/text")
async def save_text(
    device_id: uuid.UUID, body: TextSave, page: Writer, session: SessionDep, runtime: RuntimeDep
) -> TextSaved:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, page.me.tenant_id)
    work = editor.save_text(session, store, files, body.path, body.content, body.base_sha256)
    return await audited(
        _auditor(page, runtime), "file.edit", device_id, body.path,
        work_then_commit(session, work), risk="medium",
    )  # fmt: skip


@script_router.post("/devices/{device_id}/files/text/revert")
async def revert_text(
    device_id: uuid.UUID, body: RevertBody, page: Writer, session: SessionDep, runtime: RuntimeDep
) -> TextSaved:
    files = await _files(page, session, runtime, P.FILE_WRITE, device_id)
    store = service.tenant_store(runtime.settings.data_dir, page.me.tenant_id)
    saved, _ref = await audited(
        _auditor(page, runtime), "file.revert", device_id, body.path,
        editor.revert_text(session, store, files, body.path), risk="medium",
    )  # fmt: skip
    return saved
