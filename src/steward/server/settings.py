"""All server configuration, read once from the environment (prefix `STEWARD_`)."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev", "steward"}
_SECRET_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_", extra="ignore")

    environment: str = Field(default="development", description="development | production")
    data_dir: Path = Field(default=Path("data"))
    database_url: str = Field(default="", description="default: SQLite file in the data dir")
    secret_key: str = Field(default="", description="default: generated once into the data dir")
    base_domain: str = "localhost"
    # How long a replica trusts what it read of a tenant (slug -> id, status) without asking again;
    # changes made through the server reach every replica at once over the bus.
    tenant_cache_ttl_s: float = Field(default=30.0, ge=0.0, le=3600.0)
    redis_url: str = ""
    # Names every key and channel of this deployment in Redis (several may share one Redis).
    redis_prefix: str = Field(default="steward", min_length=1, max_length=64)
    # With Redis, which replica holds which agent (docs/deploy.md, "Presence"): written every
    # flush interval, renewed every third of the expiry; a dead replica's entries expire.
    presence_ttl_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    presence_flush_interval_s: float = Field(default=2.0, gt=0.0, le=60.0)
    public_url: str = Field(default="", description="URL agents and users reach the server at")
    # Addresses of the reverse proxies whose X-Forwarded-For/-Proto headers are believed
    # (comma-separated IPs or networks, e.g. "127.0.0.1"); empty: the headers are ignored.
    forwarded_allow_ips: str = ""

    access_token_ttl_s: int = 12 * 3600
    pin_ttl_s: int = 600
    pin_failures_per_minute: int = 5

    light_heartbeat_interval_s: float = 30.0
    watched_heartbeat_interval_s: float = 2.0
    watch_ttl_s: float = 20.0
    full_heartbeat_interval_s: float = 300.0
    missed_heartbeats_offline: int = 3
    status_flush_interval_s: float = 1.0
    # Garbage collection (server/collector.py): freeze survivors every so often (0: Python's
    # default behaviour), and one full pass at the long interval.
    gc_freeze_interval_s: float = Field(default=10.0, ge=0.0, le=3600.0)
    gc_full_interval_s: float = Field(default=3600.0, ge=60.0, le=7 * 24 * 3600.0)
    offline_sweep_interval_s: float = 2.0
    metrics_retention_days: int = 14
    # Files (docs/files.md, "Housekeeping"): how often the leader sweeps backups past each
    # tenant's days rule, uploads left open and backup directories without a row; and how long
    # an upload may stay open before it is expired (its partial file on the agent removed).
    file_sweep_interval_s: float = Field(default=3600.0, gt=0.0, le=7 * 24 * 3600.0)
    file_upload_expiry_s: float = Field(default=24 * 3600.0, gt=0.0, le=30 * 24 * 3600.0)

    command_timeout_s: float = 300.0
    # Expiry, due jobs and schedules, and a catch-up for jobs whose wake-up was lost.
    job_sweep_interval_s: float = 2.0
    # With PostgreSQL, the work above runs on one replica (an advisory lock): how often a replica
    # tries to take the lead, and the leader checks it still holds it. Takeover needs at most
    # about twice this after the leader dies (docs/deploy.md).
    leader_check_interval_s: float = Field(default=5.0, gt=0.0, le=10.0)
    max_agent_connections: int = 19_000
    # Handshakes waiting for the database at once (their credentials are checked together).
    agent_handshakes_concurrent: int = 500
    agent_handshake_wait_s: float = 5.0
    max_request_bytes: int = 1024 * 1024
    # Adds `X-Steward-Committed-At` to command submissions, for the benchmark (bench/).
    timing_headers: bool = False
    default_locale: str = "en"
    default_timezone: str = "UTC"
    # Copies of audit events (docs/audit.md): `udp://host:514` or `tcp://host:601`; a URL to POST.
    audit_syslog_url: str = ""
    audit_webhook_url: str = ""

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'steward.db'}"

    @cached_property
    def effective_secret_key(self) -> str:
        """The configured key, or one generated on first use and kept in the data dir."""
        if self.secret_key:
            if self.is_production and self.secret_key.lower() in _PLACEHOLDER_SECRETS:
                raise ValueError("STEWARD_SECRET_KEY is a placeholder; set a real secret")
            return self.secret_key
        path = self.data_dir / _SECRET_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
