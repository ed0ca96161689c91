"""`python -m steward.cli`."""

from steward.cli import app

app()
