"""Tenant A's users against tenant B's devices' files, uploads and backups: 404 before anything
reaches B's agent; the file policy is each tenant's own."""

from __future__ import annotations

from tests.isolation.cases import Case, api, page

FILES = "/api/v1/devices/{device_id}/files"
PATH = "?path=/tmp/b.txt"
POLICY = {
    "linux_roots": ["/home"], "windows_roots": [], "allow_system_dirs": False,
    "max_upload_bytes": 1024, "max_editor_bytes": 1024, "max_backup_bytes": 1024,
    "backup_keep_versions": 3, "backup_keep_days": 0,
}  # fmt: skip


def _files(method: str, path: str, **kwargs: object) -> Case:
    return api(method, path, 404, manage=True, **kwargs)  # type: ignore[arg-type]


CASES: list[Case] = [
    _files("GET", FILES, query=PATH),
    _files("GET", FILES + "/stat", query=PATH),
    _files("GET", FILES + "/download", query=PATH),
    _files("GET", FILES + "/text", query=PATH),
    _files("PUT", FILES + "/text", body={"path": "/tmp/b.txt", "content": "x"}, modifies=True),
    _files("POST", FILES + "/text/revert", body={"path": "/tmp/b.txt"}, modifies=True),
    _files("POST", FILES + "/mkdir", body={"path": "/tmp/b"}, modifies=True),
    _files("POST", FILES + "/rename", body={"path": "/tmp/b", "target": "/tmp/c"}, modifies=True),
    _files("POST", FILES + "/delete", body={"path": "/tmp/b"}, modifies=True),
    _files("POST", FILES + "/uploads", body={"path": "/tmp/b", "size": 1}, modifies=True),
    _files("GET", FILES + "/uploads/{upload_id}"),
    _files("PUT", FILES + "/uploads/{upload_id}", query="?offset=0", modifies=True),
    _files("POST", FILES + "/uploads/{upload_id}/finish", body={"sha256": "0" * 64}),
    _files("DELETE", FILES + "/uploads/{upload_id}", modifies=True),
    _files("GET", "/api/v1/devices/{device_id}/backups"),
    _files("POST", "/api/v1/devices/{device_id}/backups", body={"path": "/tmp/b"}, modifies=True),
    _files("GET", "/api/v1/backups/{backup_id}"),
    _files("POST", "/api/v1/backups/{backup_id}/restore", body={}, modifies=True),
    api("GET", "/api/v1/tenant/file-policy", 200, manage=True),
    api("PUT", "/api/v1/tenant/file-policy", 200, body=POLICY, manage=True, modifies=True,
        variant="only A's own policy"),
]  # fmt: skip

CONSOLE = "/devices/{device_id}/files"


def _page(method: str, path: str, expect: int = 404, **kwargs: object) -> Case:
    return page(method, path, expect, manage=True, **kwargs)  # type: ignore[arg-type]


# The page scripts' JSON routes get a form from this suite: refused (422) before anything is
# looked up, B's device included; with JSON they meet B's device first (404, as the API does).
SCRIPT_BODY = 422


CASES += [
    _page("GET", CONSOLE, query=PATH),
    _page("GET", CONSOLE + "/download", query=PATH),
    _page("GET", CONSOLE + "/edit", query=PATH),
    _page("GET", "/devices/{device_id}/backups"),
    _page("POST", CONSOLE + "/mkdir", body={"directory": "/tmp", "name": "x"}, modifies=True),
    _page("POST", CONSOLE + "/rename", body={"path": "/tmp/b", "name": "c"}, modifies=True),
    _page("POST", CONSOLE + "/delete", body={"path": "/tmp/b"}, modifies=True),
    _page("POST", "/devices/{device_id}/backups", body={"path": "/tmp/b"}, modifies=True),
    _page("POST", "/backups/{backup_id}/restore", body={"device_id": "{device_id}"},
          modifies=True),
    _page("POST", CONSOLE + "/uploads", SCRIPT_BODY, body={"path": "/tmp/b", "size": "1"},
          modifies=True),
    _page("GET", CONSOLE + "/uploads/{upload_id}"),
    _page("PUT", CONSOLE + "/uploads/{upload_id}", query="?offset=0", modifies=True),
    _page("POST", CONSOLE + "/uploads/{upload_id}/finish", SCRIPT_BODY, body={"sha256": "0" * 64}),
    _page("DELETE", CONSOLE + "/uploads/{upload_id}", modifies=True),
    _page("PUT", CONSOLE + "/text", SCRIPT_BODY, body={"path": "/tmp/b", "content": "x"},
          modifies=True),
    _page("POST", CONSOLE + "/text/revert", SCRIPT_BODY, body={"path": "/tmp/b"}, modifies=True),
]  # fmt: skip

# The console's settings page: the policy it shows and saves is A's own.
SETTINGS_FORM = {
    "linux_roots": "/home", "windows_roots": "", "max_upload_mib": "1", "max_editor_mib": "1",
    "max_backup_mib": "1", "backup_keep_versions": "3", "backup_keep_days": "0",
}  # fmt: skip
CASES += [
    page("GET", "/settings/files", 200, manage=True),
    page("POST", "/settings/files", 303, body=SETTINGS_FORM, manage=True, modifies=True,
         variant="only A's own policy"),
]  # fmt: skip
