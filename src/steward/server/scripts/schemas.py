"""Requests and responses of the script library."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from steward.protocol.payloads import MAX_SCRIPT_BYTES, ScriptInterpreter
from steward.server.scripts.params import ParameterSpec, ParamValue, check_parameters

_CONTROL = frozenset(chr(c) for c in range(32)) | {"\x7f"}


def _script_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a name is required")
    if any(c in _CONTROL for c in value):
        raise ValueError("control characters are not allowed in a name")
    return value


def _script_body(value: str) -> str:
    if not value.strip():
        raise ValueError("the script is empty")
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    if len(value.encode("utf-8")) > MAX_SCRIPT_BYTES:
        raise ValueError(f"the script is larger than {MAX_SCRIPT_BYTES // 1024} KiB")
    return value


ScriptName = Annotated[str, Field(max_length=200), AfterValidator(_script_name)]
ScriptBody = Annotated[str, Field(max_length=MAX_SCRIPT_BYTES), AfterValidator(_script_body)]
Description = Annotated[str, Field(max_length=2000)]
Note = Annotated[str, Field(max_length=500)]
Parameters = Annotated[list[ParameterSpec], AfterValidator(check_parameters)]


class ScriptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ScriptName
    description: Description = ""
    interpreter: ScriptInterpreter
    body: ScriptBody
    parameters: Parameters = Field(default_factory=list)
    note: Note = ""


class ScriptVersionCreate(BaseModel):
    """A new version: the text and parameters in full. The interpreter stays when omitted."""

    model_config = ConfigDict(extra="forbid")

    body: ScriptBody
    parameters: Parameters = Field(default_factory=list)
    interpreter: ScriptInterpreter | None = None
    note: Note = ""


class ScriptUpdate(BaseModel):
    """What changes without a new version: the name, the description, archiving."""

    model_config = ConfigDict(extra="forbid")

    name: ScriptName | None = None
    description: Description | None = None
    archived: bool | None = None


class ScriptResolve(BaseModel):
    """Parameters for a version (the latest when `version` is omitted)."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)
    params: dict[str, ParamValue] = Field(default_factory=dict, max_length=64)


class ScriptRunRequest(ScriptResolve):
    """What the command engine is asked to run: a script of the tenant's library."""

    script_id: uuid.UUID


class ScriptSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    interpreter: str
    latest_version: int
    archived: bool
    created_by: str
    created_at: datetime
    updated_at: datetime


class ScriptVersionSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    interpreter: str
    sha256: str
    note: str
    created_by: str
    created_at: datetime


class ScriptVersionPublic(ScriptVersionSummary):
    body: str
    parameters: list[ParameterSpec]


class ScriptDetail(ScriptSummary):
    latest: ScriptVersionPublic
    versions: list[ScriptVersionSummary]
