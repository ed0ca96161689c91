"""Steward: self-hosted, multi-tenant fleet management."""

__version__ = "0.1.0"
