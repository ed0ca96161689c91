"""Steward's benchmark (issue 6): `python -m bench.run`, or `make bench`."""
