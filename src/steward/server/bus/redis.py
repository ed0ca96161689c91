"""The Redis bus (replicas): hints reach every process subscribed to `<prefix>:<channel>`.

Each process holds one pub/sub connection for all its channels and one sender task. Messages a
process publishes are delivered to its own handlers at once, in the process, and skipped when
Redis echoes them back (every envelope names its origin), so a replica wakes its own agents
even while Redis is down. While Redis is down `publish` drops messages (the database is the
truth: the runtime polls it instead) and the listener reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections import defaultdict
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from steward.server.bus import Handler

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 10_000  # messages waiting for Redis; beyond that they are dropped
SEND_BATCH = 500  # messages sent in one pipeline round trip
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0
READY = "steward-bus-ready"


class RedisBus:
    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "steward", timeout_s: float = 2.0) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._origin = uuid.uuid4().hex
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._subscribed: set[str] = set()  # channels of the current pub/sub connection
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(OUTBOX_LIMIT)
        self._client: redis.Redis | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._healthy = False
        self._epoch = 0

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def epoch(self) -> int:
        return self._epoch

    def _redis_channel(self, channel: str) -> str:
        return f"{self._prefix}:{channel}"

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._client = redis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout_s,
            socket_timeout=self._timeout_s,
            health_check_interval=10,
        )
        self._loops = [
            asyncio.create_task(self._listen(), name="redis bus listener"),
            asyncio.create_task(self._send(), name="redis bus sender"),
        ]

    async def stop(self) -> None:
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        self._loops = []
        self._healthy = False
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            self._client = None

    # ---- the publishers' side ----------------------------------------------------------------

    def subscribe(self, channel: str, handler: Handler) -> None:
        # A channel added after start joins the pub/sub connection within a second.
        self._handlers[channel].append(handler)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Never raises and never waits on Redis: the message is queued for the sender."""
        self._deliver_locally(channel, message)
        if not self._healthy:
            log.debug("redis bus down: %s message not sent to other replicas", channel)
            return
        try:
            envelope = json.dumps({"origin": self._origin, "message": message})
        except (TypeError, ValueError):
            log.exception("bus message on %s is not JSON; not sent to other replicas", channel)
            return
        try:
            self._outbox.put_nowait((self._redis_channel(channel), envelope))
        except asyncio.QueueFull:
            log.debug("redis bus outbox full: %s message dropped", channel)

    async def _send(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < SEND_BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            assert self._client is not None
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for redis_channel, envelope in batch:
                        pipe.publish(redis_channel, envelope)
                    await pipe.execute()
            except (RedisError, OSError):
                # The listener notices the outage too and reports it; these are hints.
                log.debug("redis bus: %d messages not sent", len(batch), exc_info=True)

    # ---- the subscribers' side ---------------------------------------------------------------

    async def _listen(self) -> None:
        delay = RECONNECT_FIRST_S
        while True:
            assert self._client is not None
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            was_up = False
            try:
                await self._follow(pubsub)
            except (RedisError, OSError) as exc:
                was_up = self._healthy
                if was_up:
                    log.warning("redis bus lost (%s); polling the database meanwhile", exc)
                self._healthy = False
            finally:
                self._subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            if was_up:
                delay = RECONNECT_FIRST_S
            jitter = random.uniform(0.5, 1.0)  # noqa: S311 - spreads the replicas, not secret
            await asyncio.sleep(delay * jitter)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _follow(self, pubsub: PubSub) -> None:
        await self._subscribe_new(pubsub)
        await self._confirm(pubsub)
        if not self._healthy:
            log.info("redis bus connected")
        self._healthy = True
        self._epoch += 1
        while True:
            await self._subscribe_new(pubsub)
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                self._on_redis_message(message)

    async def _confirm(self, pubsub: PubSub) -> None:
        """Healthy only once Redis answered: the answer to a ping comes after those to the
        subscriptions sent before it, so from then on nothing published to them is missed."""
        await pubsub.ping(READY)
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            message = await pubsub.get_message(timeout=left)
            if message is None:
                continue
            if message.get("type") == "message":
                self._on_redis_message(message)
            elif message.get("type") == "pong" and message.get("data") in (READY, READY.encode()):
                return
        raise RedisTimeoutError("no answer from redis")

    async def _subscribe_new(self, pubsub: PubSub) -> None:
        new = [c for c in self._handlers if c not in self._subscribed]
        if new:
            await pubsub.subscribe(*(self._redis_channel(c) for c in new))
            self._subscribed.update(new)

    def _on_redis_message(self, raw: dict[str, Any]) -> None:
        redis_channel = raw["channel"]
        if isinstance(redis_channel, bytes):
            redis_channel = redis_channel.decode()
        channel = redis_channel.removeprefix(f"{self._prefix}:")
        try:
            envelope = json.loads(raw["data"])
            origin, message = envelope["origin"], envelope["message"]
        except (ValueError, TypeError, KeyError):
            log.warning("redis bus: unreadable message on %s ignored", redis_channel)
            return
        if origin == self._origin or not isinstance(message, dict):
            return  # our own, already delivered by publish
        self._deliver_locally(channel, message)

    def _deliver_locally(self, channel: str, message: dict[str, Any]) -> None:
        # Each handler on its own task, so neither the publisher nor the listener waits.
        for handler in self._handlers.get(channel, ()):
            task = asyncio.create_task(_deliver(handler, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _deliver(handler: Handler, message: dict[str, Any]) -> None:
    try:
        await handler(message)
    except Exception:
        log.exception("bus handler failed")
