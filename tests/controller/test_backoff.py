from __future__ import annotations

import random

from reconciler.controller import backoff


def test_delay_doubles_per_failure_up_to_the_cap() -> None:
    b = backoff.Backoff(backoff.BackoffPolicy(base=1.0, factor=2.0, cap=10.0))
    assert [b.failure("src") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.failures("src") == 6


def test_success_resets_only_that_key() -> None:
    b = backoff.Backoff(backoff.BackoffPolicy(base=0.5, factor=3.0, cap=100.0))
    b.failure("a")
    b.failure("a")
    b.failure("b")
    b.reset("a")
    assert b.failures("a") == 0
    assert b.failure("a") == 0.5
    assert b.failure("b") == 1.5


def test_jitter_stays_within_its_fraction() -> None:
    b = backoff.Backoff(backoff.BackoffPolicy(base=10.0, factor=1.0, cap=100.0, jitter=0.2), rng=random.Random(7))
    delays = [b.failure("k") for _ in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert len(set(delays)) > 100  # really random, not a constant


def test_a_very_long_outage_does_not_overflow() -> None:
    b = backoff.Backoff(backoff.BackoffPolicy(base=1.0, factor=10.0, cap=60.0))
    assert b.delay_for(10_000) == 60.0
