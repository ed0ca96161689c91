"""Tenant A's users following tenant B's command output live: 404, snapshot or stream."""

from __future__ import annotations

from tests.isolation.cases import Case, api

CASES: list[Case] = [
    api("GET", "/api/v1/commands/{command_id}/stream", 404),
    api("GET", "/api/v1/commands/{command_id}/stream", 404, query="?follow=false", variant="once"),
]
