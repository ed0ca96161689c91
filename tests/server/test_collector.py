"""The garbage collector policy (`server/collector.py`): survivors are frozen out of the full
passes, and a full pass now and then brings them back, collects and freezes again."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from steward.server.collector import CollectorPolicy


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    gc.unfreeze()  # the test process goes back to Python's default


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_tick_freezes_survivors_and_collects_young_garbage(restored: None) -> None:
    gc.unfreeze()
    policy = CollectorPolicy(freeze_interval_s=10, full_interval_s=3600)
    survivor = [_Cycle() for _ in range(100)]
    assert gc.get_freeze_count() == 0
    policy.tick()
    frozen = gc.get_freeze_count()
    assert frozen >= len(survivor)
    # Garbage made after the freeze is not frozen: a young collection frees it.
    _Cycle()
    policy.tick()
    assert gc.get_freeze_count() >= frozen


def test_a_full_pass_frees_cycles_that_died_while_frozen(restored: None) -> None:
    gc.unfreeze()
    policy = CollectorPolicy(freeze_interval_s=10, full_interval_s=3600)
    doomed = [_Cycle() for _ in range(1000)]
    policy.tick()  # frozen while alive
    before = gc.get_freeze_count()
    del doomed  # now cyclic garbage inside the frozen generation: no pass sees it
    gc.collect()
    assert gc.get_freeze_count() >= before - 10
    policy.full()  # unfreeze, collect, freeze
    assert gc.get_freeze_count() <= before - 1000


def test_the_long_interval_makes_a_tick_a_full_pass(restored: None) -> None:
    policy = CollectorPolicy(freeze_interval_s=10, full_interval_s=60)
    policy._last_full -= 61
    doomed = [_Cycle() for _ in range(500)]
    gc.freeze()
    before = gc.get_freeze_count()
    del doomed
    policy.tick()
    assert gc.get_freeze_count() <= before - 500


def test_zero_turns_it_off() -> None:
    assert not CollectorPolicy(freeze_interval_s=0, full_interval_s=3600).enabled
