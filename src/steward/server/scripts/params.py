"""Typed script parameters: how they are declared, and how given values become `env`/`args`.

Values are validated by type and handed to the agent as environment variables
(`STEWARD_PARAM_<NAME>`) or argv entries, in declaration order. They are never spliced into
the script's text, so a value such as `$(rm -rf /)` reaches the script as those characters.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from steward.server.errors import InvalidInput

ENV_PREFIX = "STEWARD_PARAM_"
MAX_PARAMETERS = 64  # what the protocol's ScriptPayload carries (env + args)
MAX_VALUE_LENGTH = 4096  # per value, as in the protocol
MAX_CHOICES = 100
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")

ParamValue = str | int | bool


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"


class PassAs(StrEnum):
    ENV = "env"
    ARG = "arg"


Choice = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ParameterSpec(BaseModel):
    """One declared parameter of a script version."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    label: str = Field(default="", max_length=200)
    type: ParamType = ParamType.STRING
    required: bool = False
    default: ParamValue | None = None
    choices: list[Choice] = Field(default_factory=list, max_length=MAX_CHOICES)
    pattern: str | None = Field(default=None, max_length=500)
    max_length: int | None = Field(default=None, ge=1, le=MAX_VALUE_LENGTH)
    pass_as: PassAs = PassAs.ENV

    @model_validator(mode="after")
    def _consistent(self) -> ParameterSpec:
        if self.type is ParamType.CHOICE:
            if not self.choices:
                raise ValueError(f"parameter {self.name}: a choice parameter needs choices")
            if len(set(self.choices)) != len(self.choices):
                raise ValueError(f"parameter {self.name}: choices repeat")
        elif self.choices:
            raise ValueError(f"parameter {self.name}: only choice parameters have choices")
        if self.type is not ParamType.STRING and (self.pattern or self.max_length):
            raise ValueError(
                f"parameter {self.name}: pattern and max_length are for string parameters"
            )
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"parameter {self.name}: pattern does not compile: {exc}") from exc
        if self.default is not None:
            try:
                self.default = _typed_default(self, coerce(self, self.default))
            except InvalidInput as exc:
                raise ValueError(f"default of {exc.message}") from exc
        return self

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _typed_default(spec: ParameterSpec, text: str) -> ParamValue:
    """The default stored in its own type (`3`, `true`), not as the text it is passed as."""
    if spec.type is ParamType.INTEGER:
        return int(text)
    if spec.type is ParamType.BOOLEAN:
        return text == "true"
    return text


def check_parameters(parameters: list[ParameterSpec]) -> list[ParameterSpec]:
    """A whole declaration: at most 64 parameters, names unique."""
    if len(parameters) > MAX_PARAMETERS:
        raise ValueError(f"at most {MAX_PARAMETERS} parameters")
    names = [p.name for p in parameters]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"parameter names repeat: {', '.join(repeated)}")
    return parameters


def _invalid(spec: ParameterSpec, why: str) -> InvalidInput:
    return InvalidInput(f"parameter {spec.name!r}: {why}", code="invalid_parameter")


def coerce(spec: ParameterSpec, value: ParamValue) -> str:
    """The text a value is passed as, once it is valid for the parameter's type."""
    if spec.type is ParamType.INTEGER:
        if isinstance(value, bool):
            raise _invalid(spec, "expected an integer")
        if isinstance(value, int):
            text = str(value)
        elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            text = str(int(value.strip()))
        else:
            raise _invalid(spec, "expected an integer")
        if len(text) > 19:
            raise _invalid(spec, "the integer is too large")
        return text
    if spec.type is ParamType.BOOLEAN:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower()
        raise _invalid(spec, "expected true or false")
    if not isinstance(value, str):
        raise _invalid(spec, "expected text")
    if "\x00" in value:
        raise _invalid(spec, "NUL characters are not allowed")
    if spec.type is ParamType.CHOICE:
        if value not in spec.choices:
            raise _invalid(spec, f"expected one of {', '.join(spec.choices)}")
        return value
    limit = min(spec.max_length or MAX_VALUE_LENGTH, MAX_VALUE_LENGTH)
    if len(value) > limit:
        raise _invalid(spec, f"at most {limit} characters")
    if spec.pattern and re.fullmatch(spec.pattern, value) is None:
        raise _invalid(spec, "does not match the required pattern")
    return value


def bind(
    parameters: list[ParameterSpec], values: dict[str, ParamValue]
) -> tuple[dict[str, str], list[str]]:
    """The `env` and `args` for the given values. Raises InvalidInput `invalid_parameter`
    naming the parameter: unknown, missing while required, or not valid for its type.

    An optional parameter with no value and no default is passed as an empty string, so the
    environment variable exists and later arguments keep their positions."""
    known = {spec.name for spec in parameters}
    for name in values:
        if name not in known:
            raise InvalidInput(f"parameter {name!r}: unknown parameter", code="invalid_parameter")
    env: dict[str, str] = {}
    args: list[str] = []
    for spec in parameters:
        value = values.get(spec.name, spec.default)
        if value is None:
            if spec.required:
                raise _invalid(spec, "a value is required")
            text = ""
        else:
            text = coerce(spec, value)
            if spec.required and text == "":
                raise _invalid(spec, "a value is required")
        if spec.pass_as is PassAs.ENV:
            env[spec.env_name] = text
        else:
            args.append(text)
    return env, args
