"""Everything a running server holds: settings, database, bus, agent hub, background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from steward.server.accounts.lockout import Lockout
from steward.server.accounts.throttle import LoginThrottle
from steward.server.audit.forward import AuditForwarder
from steward.server.bus import FALLBACK_POLL_INTERVAL_S, Bus, PollWhileDown, make_bus
from steward.server.bus.presence import Presence, make_presence
from steward.server.bus.store import redis_client
from steward.server.collector import CollectorPolicy
from steward.server.db.base import utcnow
from steward.server.db.engine import create_engine, create_session_factory
from steward.server.devices.service import prune_metrics
from steward.server.files.sweep import sweep_files
from steward.server.gateway.admission import AdmissionGate
from steward.server.gateway.hub import AgentHub
from steward.server.gateway.status import StatusBuffer
from steward.server.jobs.runner import JobRunner
from steward.server.jobs.schedules import ScheduleFirer
from steward.server.leader import Leadership
from steward.server.ratelimit import OncePerWindow, RateLimiter, make_limiter
from steward.server.settings import Settings
from steward.server.tenancy.hosts import TenantResolver
from steward.server.terminal.holdings import SessionHoldings, make_holdings
from steward.server.terminal.service import close_lost_sessions

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    system_sessions: async_sessionmaker[AsyncSession]
    bus: Bus
    status: StatusBuffer
    hub: AgentHub
    presence: Presence  # which replica holds which agent (shared through Redis)
    pin_failures: RateLimiter
    login_throttle: LoginThrottle  # platform administrators' sign-ins
    lockout: Lockout  # tenant users' sign-ins and second factors
    refusals: OncePerWindow  # refused requests recorded once a minute per user and route
    admission: AdmissionGate
    tenants: TenantResolver
    jobs: JobRunner
    leadership: Leadership  # whether this replica runs the cluster-wide periodic work
    terminal_holdings: SessionHoldings  # which replica holds which web terminal
    audit_forwarder: AuditForwarder | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.effective_database_url)
        sessions = create_session_factory(engine)
        system_sessions = create_session_factory(engine, system=True)
        bus = make_bus(settings, prefix=settings.redis_prefix)
        # Presence and rate limits shared by the replicas (the presence map closes it).
        shared = redis_client(settings.redis_url) if settings.redis_url else None
        presence = make_presence(settings, shared)
        status = StatusBuffer(system_sessions, settings.missed_heartbeats_offline)
        hub = AgentHub(settings, system_sessions, bus, status, presence)
        jobs = JobRunner(system_sessions, hub.deliver)
        hub.on_job_progress = jobs.advance
        firer = ScheduleFirer(sessions, system_sessions, settings.command_timeout_s, jobs.advance)
        jobs.fire_schedules = firer.fire_due
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            system_sessions=system_sessions,
            bus=bus,
            status=status,
            hub=hub,
            presence=presence,
            jobs=jobs,
            leadership=Leadership(
                settings.effective_database_url, settings.leader_check_interval_s
            ),
            terminal_holdings=make_holdings(
                shared,
                presence.replica_id,
                prefix=settings.redis_prefix,
                ttl_s=settings.presence_ttl_s,
            ),
            pin_failures=make_limiter(
                "pin", settings.pin_failures_per_minute, 60.0, shared, settings.redis_prefix
            ),
            login_throttle=LoginThrottle(client=shared, prefix=settings.redis_prefix),
            lockout=Lockout(system_sessions),
            refusals=OncePerWindow(),
            admission=AdmissionGate(
                concurrent=settings.agent_handshakes_concurrent,
                wait_s=settings.agent_handshake_wait_s,
                retry_after_s=(2, 10),
            ),
            tenants=TenantResolver(system_sessions, bus, ttl_s=settings.tenant_cache_ttl_s),
            audit_forwarder=AuditForwarder.from_settings(settings),
        )

    async def start(self) -> None:
        await self.bus.start()
        if self.audit_forwarder is not None:
            await self.audit_forwarder.start()
        await self.leadership.start()
        s = self.settings
        # Each process flushes what it holds in memory; work on shared rows runs on the leader.
        self._tasks = [
            self._every(s.status_flush_interval_s, self.status.flush, "status flush"),
            self._every(s.status_flush_interval_s, self.hub.output.flush, "output flush"),
            self._every(1.0, self.hub.expire_watches, "watch expiry"),
            self._every(60.0, self._forget_idle_routes, "relay routes"),
            self._every(s.presence_flush_interval_s, self.presence.flush, "presence flush"),
            asyncio.create_task(self.hub.writer.run(), name="agent reports"),
            self._every(  # on every replica, for its own agents
                FALLBACK_POLL_INTERVAL_S,
                PollWhileDown(self.bus, self.hub.poll_pending),
                "bus fallback",
            ),
            self._every(
                s.offline_sweep_interval_s,
                self.status.sweep_offline,
                "offline sweep",
                leader_only=True,
            ),
            self._every(s.job_sweep_interval_s, self.jobs.sweep, "job sweep", leader_only=True),
            self._every(3600.0, self.prune_history, "metrics retention", leader_only=True),
            self._every(
                s.presence_flush_interval_s, self.terminal_holdings.flush, "terminals held"
            ),
            self._every(
                60.0,
                partial(
                    close_lost_sessions, self.system_sessions, self.terminal_holdings, s.data_dir
                ),
                "lost terminals",
                leader_only=True,
            ),
            self._every(s.file_sweep_interval_s, self._sweep_files, "file sweep", leader_only=True),
        ]
        collector = CollectorPolicy(s.gc_freeze_interval_s, s.gc_full_interval_s)
        if collector.enabled:
            self._tasks.append(self._every(collector.freeze_interval_s, collector.run, "gc"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.leadership.stop()  # another replica takes over at its next check
        with contextlib.suppress(Exception):
            await self.presence.stop()  # our agents' entries go at once, not at expiry
        with contextlib.suppress(Exception):
            await self.hub.writer.flush()  # results that arrived last (agents would resend)
        with contextlib.suppress(Exception):
            await self.status.flush()  # keep the last states of a clean shutdown
        with contextlib.suppress(Exception):
            await self.hub.output.flush()
        if self.audit_forwarder is not None:
            await self.audit_forwarder.stop()
        await self.hub.relay.aclose()
        await self.bus.stop()
        await self.engine.dispose()

    async def _forget_idle_routes(self) -> None:
        self.hub.relay.forget_idle()

    async def _sweep_files(self) -> None:
        await sweep_files(self)  # backups past retention, abandoned uploads, orphan files

    async def prune_history(self) -> int:
        cutoff = utcnow() - timedelta(days=self.settings.metrics_retention_days)
        async with self.system_sessions() as session:
            pruned = await prune_metrics(session, cutoff)
            await session.commit()
        return pruned

    def _every(
        self,
        interval_s: float,
        job: Callable[[], Awaitable[object]],
        name: str,
        *,
        leader_only: bool = False,
    ) -> asyncio.Task[None]:
        """Run `job` every `interval_s`; with `leader_only`, only while this replica leads."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                if leader_only and not self.leadership.is_leader:
                    continue
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("%s failed; retrying in %.0f s", name, interval_s, exc_info=True)

        return asyncio.create_task(loop(), name=name)
