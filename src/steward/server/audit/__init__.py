"""The record of security-relevant events."""
