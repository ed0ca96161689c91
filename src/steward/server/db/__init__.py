"""Database glue: engine, sessions, base model, tenant filter, migrations. No business rules."""
