"""How the permission matrix calls the live output stream: the snapshot only, so that the
call returns although the matrix's command never runs."""

from __future__ import annotations

from tests.permissions.routes import Key, Request

REQUESTS: dict[Key, Request] = {
    ("GET", "/api/v1/commands/{command_id}/stream"): Request(query="?follow=false"),
}
