"""Request and response models of the file API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from steward.protocol import FileEntry
from steward.protocol.streams import MAX_PATH_CHARS

PathField = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class EntryPublic(BaseModel):
    name: str
    path: str
    kind: Literal["file", "dir", "link", "other"]
    size: int
    modified: datetime
    mode: str
    owner: str
    group: str

    @classmethod
    def of(cls, entry: FileEntry) -> EntryPublic:
        try:
            modified = datetime.fromtimestamp(entry.modified, UTC)
        except (OverflowError, OSError, ValueError):
            modified = datetime.fromtimestamp(0, UTC)
        return cls(
            name=entry.name,
            path=entry.path,
            kind=entry.kind,
            size=entry.size,
            modified=modified,
            mode=entry.mode,
            owner=entry.owner,
            group=entry.group,
        )


class Listing(BaseModel):
    path: str
    parent: str | None
    entries: list[EntryPublic]
    truncated: bool
    roots: list[str]


class MkdirBody(BaseModel):
    path: PathField
    parents: bool = False


class RenameBody(BaseModel):
    path: PathField
    target: PathField


class DeleteBody(BaseModel):
    path: PathField
    recursive: bool = False


class UploadCreate(BaseModel):
    path: PathField
    size: int = Field(ge=0)
    overwrite: bool = False


class UploadFinish(BaseModel):
    sha256: Sha256


class UploadPublic(BaseModel):
    id: uuid.UUID
    device_id: uuid.UUID
    path: str
    size: int
    received: int
    status: str
    chunk_bytes: int
    sha256: str = ""


class TextFile(BaseModel):
    path: str
    content: str
    sha256: str
    size: int
    modified: datetime | None = None


class TextSave(BaseModel):
    path: PathField
    content: str = Field(max_length=64 * 1024 * 1024)
    # The version the editor opened: a file changed meanwhile is not overwritten (409).
    base_sha256: Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")] = ""


class TextSaved(BaseModel):
    path: str
    sha256: str
    size: int
    backup_id: uuid.UUID | None


class RevertBody(BaseModel):
    path: PathField


class BackupCreate(BaseModel):
    path: PathField


class BackupPublic(BaseModel):
    id: uuid.UUID
    device_id: uuid.UUID
    group_id: uuid.UUID
    source_path: str
    kind: str
    reason: str
    created_at: datetime
    created_by: str
    size: int
    file_count: int
    sha256: str


class RestoreBody(BaseModel):
    device_id: uuid.UUID | None = None  # default: the device it came from
    path: Annotated[str, Field(max_length=MAX_PATH_CHARS)] = ""  # default: where it came from


class Restored(BaseModel):
    device_id: uuid.UUID
    path: str
    files: int
    size: int


class FilePolicyPublic(BaseModel):
    linux_roots: list[Annotated[str, Field(max_length=MAX_PATH_CHARS)]] = Field(max_length=32)
    windows_roots: list[Annotated[str, Field(max_length=MAX_PATH_CHARS)]] = Field(max_length=32)
    allow_system_dirs: bool
    max_upload_bytes: int = Field(ge=0, le=1024**4)
    max_editor_bytes: int = Field(ge=0, le=4 * 1024 * 1024)
    max_backup_bytes: int = Field(ge=0, le=1024**4)
    backup_keep_versions: int = Field(ge=1, le=1000)
    backup_keep_days: int = Field(ge=0, le=3650)  # 0: kept whatever their age
