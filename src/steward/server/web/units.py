"""Whole numbers that a settings form shows in a bigger unit (bytes as MiB, seconds as minutes),
exactly both ways: 1536 bytes is shown as 0.00146484375 MiB and comes back as 1536."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

MIB = 1024 * 1024
MINUTE = 60
# More digits than any limit of the forms: a larger number is refused before it is multiplied
# (an exponent such as 1e999999999 would otherwise build a huge integer).
_MAX_DIGITS = 15


def in_units(value: int, unit: int) -> str:
    """`value` divided by `unit`, without rounding and without trailing zeros."""
    return format((Decimal(value) / Decimal(unit)).normalize(), "f")


def from_units(text: str, unit: int) -> int | None:
    """The whole number that `text` (a count of `unit`, decimals allowed) stands for, rounded
    to the nearest; None when `text` is not a number of sensible size."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or number.adjusted() >= _MAX_DIGITS:
        return None
    return int((number * unit).to_integral_value(ROUND_HALF_UP))


def from_form(values: dict[str, Any], fields: Mapping[str, str], unit: int) -> dict[str, Any]:
    """The form's values for the schema: each form field of `fields` (form name -> schema name)
    becomes the schema's whole number; text that is not a number stays as it is, so that the
    schema refuses it for that field."""
    raw = {name: value for name, value in values.items() if name not in fields}
    for form_field, schema_field in fields.items():
        converted = from_units(values[form_field], unit)
        raw[schema_field] = values[form_field] if converted is None else converted
    return raw


def failed_field(exc: ValidationError, fields: Mapping[str, str]) -> str:
    """The form field of the schema's first error (schema names mapped back by `fields`)."""
    loc = exc.errors()[0]["loc"]
    field = str(loc[0]) if loc else ""
    return next((form for form, schema in fields.items() if schema == field), field)
