"""How the permission matrix calls the file routes. The matrix's device has no agent: a role
with the permission gets as far as asking it (409 `device_offline`) or reading a backup."""

from __future__ import annotations

import uuid
from typing import Any

from tests.permissions.routes import Key, Request
from tests.support import run_async

FILES = "/api/v1/devices/{device_id}/files"
PATH = "/tmp/matrix.txt"


def _insert(team: Any, make: Any) -> str:
    from steward.server.db.engine import standalone_session
    from steward.server.devices.models import Device

    async def work() -> str:
        async with standalone_session(team.server.settings.effective_database_url) as session:
            device = await session.get(Device, uuid.UUID(team.device_id))
            assert device is not None
            row = make(device)
            session.add(row)
            await session.commit()
            return str(row.id)

    return str(run_async(work))


def _upload(team: Any) -> str:
    from steward.server.files.models import FileUpload

    return _insert(
        team,
        lambda d: FileUpload(tenant_id=d.tenant_id, device_id=d.id, path=PATH, size=5),
    )


def _backup(team: Any) -> str:
    from steward.server.files.models import FileBackup

    return _insert(
        team,
        lambda d: FileBackup(
            tenant_id=d.tenant_id, group_id=d.group_id, device_id=d.id, source_path=PATH,
            kind="file", manifest={"files": []}, store_path="backups/none",
        ),
    )  # fmt: skip


FRESH = {"upload_id": _upload, "backup_id": _backup}
UPLOAD = FILES + "/uploads/{upload_id}"

REQUESTS: dict[Key, Request] = {
    ("GET", FILES + "/stat"): Request(query=f"?path={PATH}"),
    ("GET", FILES + "/download"): Request(query=f"?path={PATH}"),
    ("GET", FILES + "/text"): Request(query=f"?path={PATH}"),
    ("PUT", FILES + "/text"): Request({"path": PATH, "content": "x"}),
    ("POST", FILES + "/text/revert"): Request({"path": PATH}),
    ("POST", FILES + "/mkdir"): Request({"path": PATH}),
    ("POST", FILES + "/rename"): Request({"path": PATH, "target": PATH + ".new"}),
    ("POST", FILES + "/delete"): Request({"path": PATH}),
    ("POST", FILES + "/uploads"): Request({"path": PATH, "size": 5}),
    ("GET", UPLOAD): Request(fresh=("upload_id",)),
    ("PUT", UPLOAD): Request(query="?offset=0", fresh=("upload_id",)),
    ("POST", UPLOAD + "/finish"): Request({"sha256": "0" * 64}, fresh=("upload_id",)),
    ("DELETE", UPLOAD): Request(fresh=("upload_id",)),
    ("POST", "/api/v1/devices/{device_id}/backups"): Request({"path": PATH}),
    ("GET", "/api/v1/backups/{backup_id}"): Request(fresh=("backup_id",)),
    ("POST", "/api/v1/backups/{backup_id}/restore"): Request({}, fresh=("backup_id",)),
    ("PUT", "/api/v1/tenant/file-policy"): Request(
        {
            "linux_roots": ["/home", "/tmp"],  # the matrix still works in /tmp afterwards
            "windows_roots": [],
            "allow_system_dirs": False,
            "max_upload_bytes": 1024,
            "max_editor_bytes": 1024,
            "max_backup_bytes": 1024,
            "backup_keep_versions": 3,
            "backup_keep_days": 0,
        },
    ),
}

# The console's file pages, forms and page-script routes.
CONSOLE = "/devices/{device_id}/files"
REQUESTS.update(
    {
        ("GET", CONSOLE + "/download"): Request(query=f"?path={PATH}"),
        ("GET", CONSOLE + "/edit"): Request(query=f"?path={PATH}"),
        ("POST", CONSOLE + "/mkdir"): Request({"directory": "/tmp", "name": "matrix"}),
        ("POST", CONSOLE + "/rename"): Request({"path": PATH, "name": "renamed.txt"}),
        ("POST", CONSOLE + "/delete"): Request({"path": PATH}),
        ("POST", "/devices/{device_id}/backups"): Request({"path": PATH}),
        ("POST", "/backups/{backup_id}/restore"): Request(
            {"device_id": "{device_id}"}, fresh=("backup_id",)
        ),
        ("GET", CONSOLE + "/uploads/{upload_id}"): Request(fresh=("upload_id",)),
        ("PUT", CONSOLE + "/uploads/{upload_id}"): Request(query="?offset=0", fresh=("upload_id",)),
        ("POST", CONSOLE + "/uploads/{upload_id}/finish"): Request(
            {"sha256": "0" * 64}, fresh=("upload_id",)
        ),
        ("DELETE", CONSOLE + "/uploads/{upload_id}"): Request(fresh=("upload_id",)),
        # the console's settings page, as the API's request above (/tmp stays a root)
        ("POST", "/settings/files"): Request(
            {
                "linux_roots": "/home\n/tmp",
                "windows_roots": "",
                "max_upload_mib": "1",
                "max_editor_mib": "1",
                "max_backup_mib": "1",
                "backup_keep_versions": "3",
                "backup_keep_days": "0",
            }
        ),
    }
)
