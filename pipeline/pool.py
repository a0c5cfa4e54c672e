"""The worker pool: pending lookup keys -> HTTP requests -> results in the checkpoint.

Owns concurrency (at most N requests in flight), pacing (the RateLimiter),
retries with exponential backoff and jitter, the credit budget, and stopping:
at once on a rejected key, after the in-flight requests on 402, budget or signal.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import aiohttp

from pipeline.checkpoint import Result
from pipeline.client import Outcome, open_session, request_profile
from pipeline.emails import split_key
from pipeline.limiter import RateLimiter

CREDITS_PER_FOUND = 10
MAX_THROTTLES_PER_LOOKUP = 30


@dataclass(frozen=True)
class PoolSettings:
    """How the pool talks to the API."""

    url: str
    api_key: str
    rate: float = 5.0
    concurrency: int = 16
    timeout_s: float = 30.0
    max_retries: int = 5
    max_credits: int | None = None
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0


@dataclass
class PoolStats:
    """What the pool did; read live by the progress display."""

    total: int = 0
    done: int = 0
    api_calls: int = 0
    retries: int = 0
    throttled: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0
    credits: int = 0
    in_flight: int = 0
    balance: float | None = None
    failures: Counter[str] = field(default_factory=Counter)
    stop_reason: str | None = None  # auth, no_credits, budget, interrupted
    stop_message: str = ""


class Budget:
    """--max-credits: every lookup in progress reserves the price of a found profile."""

    __slots__ = ("limit", "reserved", "spent")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.spent = 0
        self.reserved = 0

    def can_reserve(self) -> bool:
        return self.limit is None or self.spent + self.reserved + CREDITS_PER_FOUND <= self.limit

    def reserve(self) -> None:
        self.reserved += CREDITS_PER_FOUND

    def settle(self, credits: int) -> None:
        self.reserved -= CREDITS_PER_FOUND
        self.spent += credits


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), capped, times 0.5..1."""
    return min(cap_s, base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def failure_cause(message: str) -> str:
    """A short cause for the summary's failures-by-cause table."""
    if message.startswith("HTTP "):
        return message.split(":")[0]
    if "timeout" in message:
        return "timeout"
    if message.startswith("connection failed"):
        return "connection failed"
    return message.split(":")[0][:40]


class Pool:
    """Runs lookups for a stream of pending keys; results go to `record` as they arrive.

    N workers (N = concurrency) each take the next key and see it through, so at
    most N requests are ever in flight; a worker backing off sends nothing.
    """

    def __init__(self, settings: PoolSettings, record: Callable[[list[Result]], None]) -> None:
        self.settings = settings
        self.record = record
        self.stats = PoolStats()
        self.limiter = RateLimiter(settings.rate)
        self.budget = Budget(settings.max_credits)
        self.budget_changed = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []
        self.unflushed: list[Result] = []
        self.flush_scheduled = False
        self.session: aiohttp.ClientSession | None = None

    # -- stopping -------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stats.stop_reason is not None

    def stop(self, reason: str, message: str = "") -> None:
        """Send nothing more; requests in flight finish (a rejected key cancels them)."""
        if self.stats.stop_reason is None:
            self.stats.stop_reason = reason
            self.stats.stop_message = message
        self.budget_changed.set()
        if reason == "auth":
            self.abort()

    def abort(self) -> None:
        """Cancel every lookup now; results already received are kept."""
        if self.stats.stop_reason is None:
            self.stats.stop_reason = "interrupted"
        for worker in self.workers:
            worker.cancel()
        self.budget_changed.set()

    # -- workers --------------------------------------------------------------

    async def run(self, pending: Iterable[list[str]], total: int) -> PoolStats:
        """Look up every pending key (or until stopped); return what happened."""
        self.stats.total = total
        keys = itertools.chain.from_iterable(pending)
        settings = self.settings
        async with open_session(
            settings.api_key, settings.timeout_s, settings.concurrency
        ) as session:
            self.session = session
            self.workers = [
                asyncio.create_task(self.work(keys)) for _ in range(self.settings.concurrency)
            ]
            try:
                results = await asyncio.gather(*self.workers, return_exceptions=True)
            finally:
                self.flush()
        for result in results:
            if isinstance(result, Exception):
                raise result
        return self.stats

    async def work(self, keys: Iterator[str]) -> None:
        """One worker: take the next key and see it through, until none is left or stopped."""
        while await self.claim_budget():
            # next() never awaits, so workers never take the same key.
            key = next(keys, None)
            if key is None:
                self.budget.settle(0)
                return
            credits = 0
            try:
                credits = await self.attempt_until_answered(key)
            finally:
                self.budget.settle(credits)
                self.budget_changed.set()

    async def claim_budget(self) -> bool:
        """Reserve the price of one found profile, waiting while lookups in progress hold it."""
        while not self.stopping:
            if self.budget.can_reserve():
                self.budget.reserve()
                return True
            if self.budget.reserved == 0:
                spent, limit = self.budget.spent, self.budget.limit
                self.stop("budget", f"spent {spent} of --max-credits {limit}")
                return False
            self.budget_changed.clear()
            await self.budget_changed.wait()
        return False

    # -- one lookup -----------------------------------------------------------

    async def attempt_until_answered(self, key: str) -> int:
        """Send until final; store the result; return the credits it cost."""
        work_email, personal_email = split_key(key)
        attempts = throttles = failures = 0
        while not self.stopping:
            outcome = await self.send(work_email, personal_email)
            if outcome is None:
                return 0
            attempts += 1
            if outcome.kind in ("found", "not_found", "rejected"):
                self.limiter.succeeded()
                self.store(key, outcome, outcome.kind, attempts)
                return outcome.credits
            if outcome.kind == "auth":
                self.stop("auth", outcome.message)
            elif outcome.kind == "no_credits":
                self.stop("no_credits", credits_message(outcome))
            elif outcome.kind == "throttled":
                self.stats.throttled += 1
                self.limiter.throttled(outcome.retry_after_s)
                throttles += 1
                if throttles > MAX_THROTTLES_PER_LOOKUP:
                    self.store(key, outcome, "failed", attempts)
                    return 0
            else:
                failures += 1
                if failures > self.settings.max_retries:
                    self.store(key, outcome, "failed", attempts)
                    return 0
                self.stats.retries += 1
                settings = self.settings
                await asyncio.sleep(
                    backoff_delay(failures, settings.backoff_s, settings.backoff_max_s)
                )
        return 0

    async def send(self, work_email: str | None, personal_email: str | None) -> Outcome | None:
        """One request within the rate limit; None if the pool stopped before it was sent."""
        assert self.session is not None
        sent_at = await self.limiter.acquire()
        if self.stopping:
            return None
        self.stats.api_calls += 1
        self.stats.in_flight += 1
        try:
            outcome = await request_profile(
                self.session, self.settings.url, work_email, personal_email
            )
        finally:
            self.stats.in_flight -= 1
        self.limiter.server_window(sent_at, outcome.rate_remaining, outcome.rate_reset_s)
        if outcome.credits_remaining is not None:
            self.stats.balance = outcome.credits_remaining
        return outcome

    def store(self, key: str, outcome: Outcome, status: str, attempts: int) -> None:
        work_email, personal_email = split_key(key)
        self.stats.done += 1
        if status == "found":
            self.stats.found += 1
            self.stats.credits += outcome.credits
        elif status == "not_found":
            self.stats.not_found += 1
        else:
            self.stats.failed += 1
            self.stats.failures[failure_cause(outcome.message)] += 1
        result = Result(
            key,
            work_email,
            personal_email,
            status,
            outcome.profile_url if status == "found" else None,
            outcome.credits if status == "found" else 0,
            outcome.message,
            attempts,
        )
        self.unflushed.append(result)
        if not self.flush_scheduled:
            # Everything that arrived in this turn of the event loop is committed
            # together at the start of the next: batched, yet durable at once.
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        results, self.unflushed = self.unflushed, []
        self.record(results)


def credits_message(outcome: Outcome) -> str:
    """The 402 explanation, with the problem's required / available credits when given."""
    if outcome.credits_required is not None and outcome.credits_available is not None:
        return (
            f"the account ran out of credits: {outcome.credits_required:g} needed, "
            f"{outcome.credits_available:g} available"
        )
    return f"the account ran out of credits ({outcome.message})"
