"""The GCRA limiter's arithmetic, driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.limiter import WINDOW_MARGIN_S, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_initial_burst_slots_are_spaced() -> None:
    clock = Clock()
    limiter = RateLimiter(5, clock)
    slots = [limiter.reserve() for _ in range(6)]
    assert slots == pytest.approx([1000.0, 1000.2, 1000.4, 1000.6, 1000.8, 1001.0])


def test_idle_spell_does_not_bank_a_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(5, clock)
    limiter.reserve()
    clock.now += 60
    slots = [limiter.reserve() for _ in range(3)]
    assert slots == pytest.approx([1060.0, 1060.2, 1060.4])


def test_lateness_does_not_accumulate() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock)
    first = limiter.reserve()
    clock.now += 0.05  # the caller woke up late
    second = limiter.reserve()
    assert second == pytest.approx(first + 0.1)


def test_window_guard_blocks_the_r_plus_first_send_within_one_second() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock)
    for offset in (0.0, 0.05, 0.1):  # three late-scheduled sends bunched together
        clock.now = 1000.0 + offset
        limiter.sent()
    clock.now = 1000.5
    assert limiter.window_wait() == pytest.approx(0.5 + WINDOW_MARGIN_S)
    clock.now = 1001.0 + WINDOW_MARGIN_S
    assert limiter.window_wait() == 0.0


def test_throttle_pauses_everyone_then_halves_and_recovers() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock)
    limiter.throttled(4.0)
    assert limiter.reserve() == pytest.approx(1004.0)
    assert limiter.rate == 5
    assert limiter.reserve() == pytest.approx(1004.2)  # spaced at the halved rate
    for _ in range(25):
        limiter.succeeded()
    assert limiter.rate == pytest.approx(10)


def test_server_window_exhausted_pauses_until_reset() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock)
    limiter.server_window(sent_at=1000.0, remaining=0, reset_s=2.0)
    assert limiter.reserve() == pytest.approx(1002.0)
    limiter.server_window(sent_at=1000.0, remaining=4, reset_s=30.0)
    assert limiter.reserve() == pytest.approx(1002.1)


def test_acquire_with_real_clock_never_exceeds_rate() -> None:
    async def go() -> list[float]:
        limiter = RateLimiter(20)
        return list(await asyncio.gather(*(limiter.acquire() for _ in range(30))))

    sends = sorted(asyncio.run(go()))
    for index in range(len(sends) - 20):
        assert sends[index + 20] - sends[index] >= 1.0
    assert sends[-1] - sends[0] < 29 / 20 + 0.3


def test_the_window_count_used_by_the_rate_tests_is_exact() -> None:
    from pipeline.simulator import most_in_any_second

    assert most_in_any_second([]) == 0
    assert most_in_any_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # 0.5..1.2 span 0.7 s
    assert most_in_any_second([0.0, 1.0, 2.0]) == 1  # a window is [t, t + 1 s)
