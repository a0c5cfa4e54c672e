"""Request pacing: never more than R requests started in any one-second window.

Algorithm: GCRA / virtual scheduling. Each request is given a send time on a
fixed grid (previous slot + 1/R), so a late timer never pushes later slots
back and there is no burst after an idle spell. A sliding window over the
actual send times guards the one-second bound against timer lateness. A 429
sets one cool-down for every caller, then the rate halves and recovers
additively (AIMD) back to the configured rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

# Spacing safety for the sliding window: network jitter between our send time
# and the server's arrival stamp must not squeeze R+1 requests into one second.
WINDOW_S = 1.0
WINDOW_MARGIN_S = 0.01
MIN_RATE_FRACTION = 0.05
RECOVERY_PER_SUCCESS = 0.02  # of the configured rate
MIN_SLEEP_S = 0.0005
MAX_WINDOW = 10_000  # beyond this many per second the guard has nothing left to guard


class RateLimiter:
    """Pure limiter state driven by an injectable clock, so it is tested without sleeping."""

    __slots__ = (
        "clock",
        "cooldown_until",
        "max_rate",
        "next_slot",
        "rate",
        "recent",
        "throttles",
    )

    def __init__(self, max_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_rate <= 0:
            raise ValueError("rate must be positive")
        #: The configured ceiling, requests per second.
        self.max_rate = max_rate
        #: The current pace; below max_rate after a 429, recovering on success.
        self.rate = max_rate
        #: Earliest send time of the next reservation on the virtual schedule.
        self.next_slot = -math.inf
        #: Send times of the last floor(R) requests (the sliding-window guard).
        self.recent: deque[float] = deque(maxlen=max(1, min(math.floor(max_rate), MAX_WINDOW)))
        #: No request is sent before this time (shared 429 cool-down).
        self.cooldown_until = -math.inf
        self.clock = clock
        #: 429 answers seen.
        self.throttles = 0

    def reserve(self) -> float:
        """Book the next slot on the schedule; return when it may be used."""
        now = self.clock()
        slot = max(now, self.next_slot, self.cooldown_until)
        self.next_slot = slot + 1.0 / self.rate
        return slot

    def window_wait(self) -> float:
        """Seconds to wait before a send now would break the cool-down or the window."""
        now = self.clock()
        wait = self.cooldown_until - now
        if len(self.recent) == self.recent.maxlen:
            wait = max(wait, self.recent[0] + WINDOW_S + WINDOW_MARGIN_S - now)
        return max(0.0, wait)

    def sent(self) -> float:
        """Record that a request is being sent now; return the send time."""
        now = self.clock()
        self.recent.append(now)
        return now

    async def acquire(self) -> float:
        """Wait for a slot; return the send time. No await lies between check and record."""
        delay = self.reserve() - self.clock()
        # A sleep costs a turn of the event loop; below timer resolution it buys nothing.
        if delay > MIN_SLEEP_S:
            await asyncio.sleep(delay)
        while (delay := self.window_wait()) > 0:
            await asyncio.sleep(delay)
        return self.sent()

    def throttled(self, retry_after_s: float | None) -> None:
        """A 429: every caller waits, then the pace halves."""
        self.throttles += 1
        wait = retry_after_s if retry_after_s is not None else 1.0
        self.pause_until(self.clock() + wait)
        self.rate = max(self.rate / 2, self.max_rate * MIN_RATE_FRACTION)

    def pause_until(self, moment: float) -> None:
        """No request starts before `moment`; slots after it are spaced again."""
        self.cooldown_until = max(self.cooldown_until, moment)
        self.next_slot = max(self.next_slot, self.cooldown_until)

    def succeeded(self) -> None:
        """An answer that was not a 429: creep back towards the configured rate."""
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + self.max_rate * RECOVERY_PER_SUCCESS)

    def server_window(self, sent_at: float, remaining: int | None, reset_s: float | None) -> None:
        """Honour RateLimit-Remaining: 0 left means nothing more until the reset."""
        if remaining is not None and remaining <= 0 and reset_s is not None:
            self.pause_until(sent_at + min(reset_s, 60.0))
