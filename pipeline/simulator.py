"""A LeadMagic-compatible b2b-profile server for tests, demos and benchmarks.

It answers like the real API (problem+json errors, RateLimit-* and X-Credits-*
headers, 404 or 200 for a miss) and keeps a ledger of what it charged, so tests
can prove nothing was paid twice. Its answers are deterministic per email.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PROFILE_PATHS = ("/v1/people/b2b-profile", "/v1/people/email-to-b2b-profile")
CREDITS_PER_FOUND = 10


@dataclass
class SimulatorSettings:
    """How the simulated API behaves. Rates are fractions of requests, 0..1."""

    api_key: str | None = None  # None: any non-empty key is accepted
    rate: float | None = None  # requests per second; beyond it, 429
    found_ratio: float = 0.5
    latency_ms: float = 0.0
    balance: float = 1_000_000.0
    error_rate: float = 0.0  # 500 problem+json
    html_error_rate: float = 0.0  # 502 with an HTML body, as proxies send
    drop_rate: float = 0.0  # connection closed without an answer
    hang_rate: float = 0.0  # no answer for hang_s seconds
    throttle_rate: float = 0.0  # spurious 429 below the rate
    not_found_status: int = 200  # 200 (null profile_url) or 404 for a miss
    echo_key: bool = False  # repeat a rejected key in the 401 detail, as careless APIs do
    rejected_suffix: str = ".invalid"  # emails ending so get 400 validation_error (RFC 2606)
    hang_s: float = 120.0
    seed: int = 0


@dataclass
class SimulatorStats:
    """What the simulator saw and charged."""

    requests: int = 0
    over_limit: int = 0  # 429s because the per-second rate was exceeded
    spurious_throttles: int = 0
    faults: int = 0
    no_credits: int = 0  # 402 answers
    found: int = 0
    not_found: int = 0
    credits_charged: int = 0
    charges: Counter[str] = field(default_factory=Counter)  # lookup -> times charged
    answered: Counter[str] = field(default_factory=Counter)  # lookup -> times answered
    arrivals: list[float] = field(default_factory=list)

    def max_in_any_second(self) -> int:
        """The most requests that arrived within any one-second window."""
        return most_in_any_second(self.arrivals)


def most_in_any_second(moments: list[float]) -> int:
    """The most of the (sorted) `moments` that fall within any one-second window."""
    most, start = 0, 0
    for end, moment in enumerate(moments):
        while moment - moments[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def profile_for(email: str, found_ratio: float) -> str | None:
    """The deterministic answer for an email: a profile URL or None."""
    digest = hashlib.sha256(email.encode()).digest()
    if digest[0] / 256 >= found_ratio:
        return None
    slug = email.split("@")[0].replace(".", "-").replace("+", "-")
    # The real API returns both shapes; keep clients honest about it.
    return slug if digest[1] % 2 else f"linkedin.com/in/{slug}"


def pick_fault(roll: float, s: SimulatorSettings) -> str | None:
    """Which fault (if any) a uniform 0..1 `roll` lands on, by the fault rates."""
    for rate, kind in (
        (s.error_rate, "error"),
        (s.html_error_rate, "html"),
        (s.drop_rate, "drop"),
        (s.hang_rate, "hang"),
        (s.throttle_rate, "throttle"),
    ):
        if roll < rate:
            return kind
        roll -= rate
    return None


def problem(status: int, code: str, title: str, detail: str, **context: Any) -> web.Response:
    error: dict[str, Any] = {
        "type": f"https://docs.leadmagic.io/errors/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if context:
        error["context"] = context
    body = {
        "success": False,
        "errors": [error],
        "meta": {"request_id": "req_" + uuid.uuid4().hex[:16], "timestamp": time.time()},
    }
    return web.json_response(body, status=status, content_type="application/problem+json")


class Simulator:
    """The aiohttp application and its state; start it with `serve` or `running`."""

    def __init__(self, settings: SimulatorSettings | None = None) -> None:
        self.settings = settings or SimulatorSettings()
        self.stats = SimulatorStats()
        self.balance = self.settings.balance
        self.window: deque[float] = deque()
        self.random = random.Random(self.settings.seed)
        self.app = web.Application()
        for path in PROFILE_PATHS:
            self.app.router.add_post(path, self.profile)
        self.app.router.add_get("/v1/credits", self.credits)
        self.app.router.add_post("/credits", self.credits)
        self.app.router.add_get("/_simulator/stats", self.report)

    def authorised(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("X-API-Key", "")
        bearer = request.headers.get("Authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key:
            return problem(401, "missing_authentication", "Missing API key", "Send X-API-Key.")
        if self.settings.api_key is not None and key != self.settings.api_key:
            detail = (
                f"The API key {key!r} is not valid."
                if self.settings.echo_key
                else ("The API key is not valid.")
            )
            return problem(401, "invalid_api_key", "Invalid API key", detail)
        return None

    def rate_headers(self, now: float) -> dict[str, str]:
        headers = {"X-Credits-Remaining": f"{self.balance:g}"}
        if self.settings.rate is not None:
            limit = math.floor(self.settings.rate)
            reset = self.window[0] + 1.0 - now if len(self.window) >= limit else 0.0
            headers["RateLimit-Limit"] = str(limit)
            headers["RateLimit-Remaining"] = str(max(0, limit - len(self.window)))
            headers["RateLimit-Reset"] = f"{max(reset, 0.0):.3f}"
        return headers

    def over_rate(self, now: float) -> float | None:
        """Seconds until a slot frees if this request exceeds the rate, else None."""
        if self.settings.rate is None:
            return None
        while self.window and now - self.window[0] >= 1.0:
            self.window.popleft()
        if len(self.window) >= math.floor(self.settings.rate):
            return self.window[0] + 1.0 - now
        self.window.append(now)
        return None

    async def profile(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        self.stats.requests += 1
        self.stats.arrivals.append(now)
        refused = self.authorised(request)
        if refused is not None:
            return refused
        wait = self.over_rate(now)
        if wait is not None:
            self.stats.over_limit += 1
            return self.throttle(wait, now)
        fault = await self.fault(request, now)
        if fault is not None:
            return fault
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        return await self.answer(request, now)

    def throttle(self, wait: float, now: float) -> web.Response:
        seconds = max(1, math.ceil(wait))
        response = problem(
            429,
            "rate_limit_exceeded",
            "Rate limit exceeded",
            f"Too many requests; retry after {seconds} s.",
            retry_after_seconds=seconds,
        )
        response.headers["Retry-After"] = str(seconds)
        response.headers.update(self.rate_headers(now))
        return response

    async def fault(self, request: web.Request, now: float) -> web.StreamResponse | None:
        s = self.settings
        kind = pick_fault(self.random.random(), s)
        if kind is None:
            return None
        self.stats.faults += 1
        if kind == "error":
            return problem(500, "INTERNAL_ERROR", "Internal error", "Wait 30 seconds and retry.")
        if kind == "html":
            html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
            return web.Response(status=502, text=html, content_type="text/html")
        if kind == "throttle":
            self.stats.spurious_throttles += 1
            return self.throttle(1.0, now)
        if kind == "hang":
            await asyncio.sleep(s.hang_s)
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)

    async def answer(self, request: web.Request, now: float) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        fields = ("work_email", "personal_email")
        values = [body.get(name) for name in fields] if isinstance(body, dict) else []
        emails: list[str] = [e for e in values if isinstance(e, str) and e]
        suffix = self.settings.rejected_suffix
        if not emails or any("@" not in e or (suffix and e.endswith(suffix)) for e in emails):
            return problem(
                400,
                "validation_error",
                "Validation error",
                "Provide a valid work_email or personal_email.",
            )
        if self.balance < CREDITS_PER_FOUND:
            self.stats.no_credits += 1
            return problem(
                402,
                "insufficient_credits",
                "Insufficient credits",
                "Your account does not have enough credits for this request.",
                required=CREDITS_PER_FOUND,
                available=self.balance,
                needed=CREDITS_PER_FOUND - self.balance,
            )
        key = "\t".join(emails)
        self.stats.answered[key] += 1
        profile_url = profile_for(emails[0], self.settings.found_ratio)
        headers = self.rate_headers(now)
        if profile_url is None:
            self.stats.not_found += 1
            headers["X-Credits-Cost"] = "0"
            if self.settings.not_found_status == 404:
                response = problem(
                    404,
                    "profile_not_found",
                    "Profile not found",
                    "No profile found for this email.",
                )
                response.headers.update(headers)
                return response
            return web.json_response(
                {
                    "profile_url": None,
                    "credits_consumed": 0,
                    "message": "No profile found for this email.",
                },
                headers=headers,
            )
        self.balance -= CREDITS_PER_FOUND
        self.stats.found += 1
        self.stats.credits_charged += CREDITS_PER_FOUND
        self.stats.charges[key] += 1
        headers["X-Credits-Cost"] = str(CREDITS_PER_FOUND)
        headers["X-Credits-Remaining"] = f"{self.balance:g}"
        message = "Profile URL found" if len(profile_url) % 2 else "Profile URL found."
        return web.json_response(
            {"profile_url": profile_url, "credits_consumed": CREDITS_PER_FOUND, "message": message},
            headers=headers,
        )

    async def credits(self, request: web.Request) -> web.Response:
        refused = self.authorised(request)
        return refused or web.json_response({"credits": self.balance})

    async def report(self, request: web.Request) -> web.Response:
        stats = self.stats
        return web.json_response(
            {
                "requests": stats.requests,
                "over_limit": stats.over_limit,
                "spurious_throttles": stats.spurious_throttles,
                "faults": stats.faults,
                "found": stats.found,
                "not_found": stats.not_found,
                "credits_charged": stats.credits_charged,
                "charged_twice": sum(1 for n in stats.charges.values() if n > 1),
                "max_in_any_second": stats.max_in_any_second(),
                "arrival_span_s": stats.arrivals[-1] - stats.arrivals[0] if stats.arrivals else 0,
                "balance": self.balance,
            }
        )

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
        """Start listening; return the runner (to clean up) and the base URL."""
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        sock = bound_socket(host, port)
        site = web.SockSite(runner, sock)
        await site.start()
        return runner, f"http://{host}:{sock.getsockname()[1]}"


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `port` (0: a free one the OS picks)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextmanager
def running(settings: SimulatorSettings | None = None) -> Iterator[tuple[Simulator, str]]:
    """Run a simulator on a free loopback port in a background thread."""
    simulator = Simulator(settings)
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def serve_forever() -> None:
        asyncio.set_event_loop(loop)
        ready["runner"], ready["url"] = loop.run_until_complete(simulator.serve())
        started.set()
        loop.run_forever()
        loop.run_until_complete(ready["runner"].cleanup())
        hanging = asyncio.all_tasks(loop)  # handlers still sleeping in a "hang" fault
        for task in hanging:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*hanging, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve_forever, name="leadmagic-simulator", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield simulator, ready["url"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
