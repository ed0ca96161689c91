"""The platform: administrators above the tenants, who manage them from the bare base domain."""
