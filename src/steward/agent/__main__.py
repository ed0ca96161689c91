"""`python -m steward.agent` is the `steward-agent` command."""

from __future__ import annotations

from steward.agent.cli import app

app(prog_name="steward-agent")
