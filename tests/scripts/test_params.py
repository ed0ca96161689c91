"""Typed parameters: declarations, and values turned into `env`/`args`, never into text."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from steward.server.errors import InvalidInput
from steward.server.scripts.params import ParameterSpec, bind
from steward.server.scripts.schemas import ScriptCreate
from tests.scripts.helpers import PARAMETERS, script_body

SPECS = [ParameterSpec.model_validate(p) for p in PARAMETERS]


def _bind(**values: Any) -> tuple[dict[str, str], list[str]]:
    return bind(SPECS, values)


def test_values_become_env_and_args_in_declaration_order() -> None:
    env, args = _bind(target="web-01", count="7", force=True, mode="fast", ticket="OPS-12")
    assert env == {
        "STEWARD_PARAM_TARGET": "web-01",
        "STEWARD_PARAM_FORCE": "true",
        "STEWARD_PARAM_TICKET": "OPS-12",
    }
    assert args == ["7", "fast"]


def test_defaults_fill_in_and_an_absent_optional_value_is_empty() -> None:
    env, args = _bind(target="x")
    assert args == ["3", "safe"]
    assert env["STEWARD_PARAM_FORCE"] == "false"
    assert env["STEWARD_PARAM_TICKET"] == ""


def test_shell_syntax_passes_through_literally() -> None:
    nasty = "a; $(rm -rf /) `id` && echo 'x' | true"
    env, _ = _bind(target=nasty)
    assert env["STEWARD_PARAM_TARGET"] == nasty


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "target"),  # missing required
        ({"target": ""}, "target"),  # empty required
        ({"target": "x", "nope": "1"}, "nope"),  # unknown
        ({"target": "x", "count": "3.5"}, "count"),
        ({"target": "x", "count": "ten"}, "count"),
        ({"target": "x", "count": True}, "count"),  # a boolean is not an integer
        ({"target": "x", "count": "1" * 30}, "count"),
        ({"target": "x", "force": "yes"}, "force"),
        ({"target": "x", "force": 1}, "force"),
        ({"target": "x", "mode": "turbo"}, "mode"),
        ({"target": "x", "ticket": "ops-12"}, "ticket"),  # pattern mismatch (fullmatch)
        ({"target": "x", "ticket": "OPS-12 extra"}, "ticket"),
        ({"target": "x", "ticket": "OPS-" + "1" * 30}, "ticket"),  # max_length
        ({"target": "a\x00b"}, "target"),
        ({"target": 5}, "target"),  # a number is not text
    ],
)
def test_bad_values_are_refused_naming_the_parameter(values: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        bind(SPECS, values)
    assert refused.value.code == "invalid_parameter"
    assert repr(named) in refused.value.message


def test_integers_and_booleans_accept_their_text_forms() -> None:
    env, args = _bind(target="x", count=" -4 ", force="TRUE")
    assert args[0] == "-4" and env["STEWARD_PARAM_FORCE"] == "true"


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "Bad"},
        {"name": "9lives"},
        {"name": "a" * 33},
        {"name": "x", "type": "choice"},  # no choices
        {"name": "x", "type": "choice", "choices": ["a", "a"]},
        {"name": "x", "choices": ["a"]},  # choices on a string
        {"name": "x", "pattern": "("},  # does not compile
        {"name": "x", "type": "integer", "pattern": "[0-9]+"},
        {"name": "x", "type": "integer", "default": "many"},
        {"name": "x", "type": "choice", "choices": ["a"], "default": "b"},
        {"name": "x", "pattern": "[a-z]+", "default": "ABC"},
        {"name": "x", "pass_as": "stdin"},
        {"name": "x", "type": "float"},
        {"name": "x", "surprise": 1},
    ],
)
def test_bad_declarations_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ParameterSpec.model_validate(spec)


def test_defaults_are_stored_in_their_type() -> None:
    spec = ParameterSpec.model_validate({"name": "n", "type": "integer", "default": "5"})
    assert spec.default == 5
    flag = ParameterSpec.model_validate({"name": "f", "type": "boolean", "default": "true"})
    assert flag.default is True


def test_a_declaration_refuses_repeated_names_and_too_many() -> None:
    with pytest.raises(ValidationError, match="repeat"):
        ScriptCreate.model_validate(script_body(parameters=[{"name": "a"}, {"name": "a"}]))
    many = [{"name": f"p{i}"} for i in range(65)]
    with pytest.raises(ValidationError, match="at most 64"):
        ScriptCreate.model_validate(script_body(parameters=many))


@pytest.mark.parametrize(
    "overrides",
    [
        {"body": ""},
        {"body": "  \n"},
        {"body": "echo \x00"},
        {"body": "é" * (128 * 1024 + 1)},  # over 256 KiB in UTF-8
        {"name": "  "},
        {"name": "a\nb"},
        {"interpreter": "perl"},
        {"extra": 1},
    ],
)
def test_bad_scripts_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ScriptCreate.model_validate(script_body(**overrides))
