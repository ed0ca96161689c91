"""A sliding-window counter kept in memory (one process). Shared limits come with Redis."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        hits = self._hits[key]
        cutoff = time.monotonic() - self.window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        return hits

    def exceeded(self, key: str) -> bool:
        return len(self._recent(key)) >= self.limit

    def hit(self, key: str) -> None:
        if len(self._hits) > self._max_keys:
            self._hits.clear()  # a flood of distinct keys must not grow memory without bound
        self._recent(key).append(time.monotonic())

    def retry_after_s(self, key: str) -> int:
        hits = self._recent(key)
        if not hits:
            return 0
        return max(1, int(hits[0] + self.window_s - time.monotonic()) + 1)


class OncePerWindow:
    """Says yes to the first sighting of a key in each window (to record floods as one line)."""

    def __init__(self, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._last: dict[object, float] = {}

    def first_in_window(self, key: object) -> bool:
        now = time.monotonic()
        if self._last.get(key, -self.window_s - 1) > now - self.window_s:
            return False
        if len(self._last) >= self.max_keys:
            self._last.clear()
        self._last[key] = now
        return True
