"""Tenant A's users against tenant B's scripts: B's script ids are 404 everywhere, and A's
lists never show B's scripts."""

from __future__ import annotations

from tests.isolation.cases import Case, api, page

SCRIPT = {"name": "made-by-a", "interpreter": "sh", "body": "echo a\n"}
NEW_VERSION = {"body": "echo overwritten-by-a\n"}

CASES: list[Case] = [
    api("GET", "/api/v1/scripts", 200, manage=True),
    api(
        "GET",
        "/api/v1/scripts",
        200,
        query="?include_archived=true",
        manage=True,
        variant="with archived",
    ),
    api("POST", "/api/v1/scripts", 201, body=SCRIPT, modifies=True, manage=True),
    api("GET", "/api/v1/scripts/{script_id}", 404, manage=True),
    api("GET", "/api/v1/scripts/{script_id}/versions/{version}", 404, manage=True),
    api(
        "POST",
        "/api/v1/scripts/{script_id}/versions",
        404,
        body=NEW_VERSION,
        modifies=True,
        manage=True,
    ),
    api(
        "PATCH",
        "/api/v1/scripts/{script_id}",
        404,
        body={"archived": True, "name": "taken-by-a"},
        modifies=True,
        manage=True,
    ),
    api(
        "POST",
        "/api/v1/scripts/{script_id}/resolve",
        404,
        body={"params": {"target": "x"}},
        manage=True,
    ),
    page("GET", "/scripts", 200, manage=True),
    page("GET", "/scripts", 200, query="?archived=true", manage=True, variant="with archived"),
    page(
        "POST",
        "/scripts",
        303,
        body={**SCRIPT, "name": "made-by-a-console"},
        modifies=True,
        manage=True,
    ),
    page("GET", "/scripts/{script_id}", 404, manage=True),
    page("GET", "/scripts/{script_id}", 404, query="?version=1", manage=True, variant="v1"),
    page(
        "POST",
        "/scripts/{script_id}",
        404,
        body={"name": "taken-by-a", "description": ""},
        modifies=True,
        manage=True,
    ),
    page(
        "POST",
        "/scripts/{script_id}/versions",
        404,
        body={"interpreter": "sh", "body": "echo overwritten-by-a"},
        modifies=True,
        manage=True,
    ),
    page(
        "POST",
        "/scripts/{script_id}/archive",
        404,
        body={"archived": "1"},
        modifies=True,
        manage=True,
    ),
]
