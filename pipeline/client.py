"""One HTTP call to the b2b-profile endpoint -> one classified Outcome.

`classify` is pure (status, headers, body -> Outcome) so every row of the API's
error table is tested without a network; `request_profile` does the I/O and
turns network failures into retryable outcomes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from pipeline.errors import AuthError

Kind = Literal["found", "not_found", "retry", "throttled", "rejected", "auth", "no_credits"]

DEFAULT_ENDPOINT = "/v1/people/b2b-profile"
CREDITS_ENDPOINT = "/v1/credits"
LEGACY_CREDITS_ENDPOINT = "/credits"
MAX_RETRY_AFTER_S = 60.0
USER_AGENT = "b2b-enrich"


@dataclass(frozen=True)
class Outcome:
    """What one request told us.

    kind: found / not_found (final), retry (5xx, network), throttled (429),
    rejected (400: final failure), auth (401), no_credits (402).
    """

    kind: Kind
    message: str
    profile_url: str | None = None
    credits: int = 0
    retry_after_s: float | None = None
    credits_remaining: float | None = None
    rate_remaining: int | None = None
    rate_reset_s: float | None = None
    credits_required: float | None = None
    credits_available: float | None = None


def classify(status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """Decide what a response means by its status; read the body for the message.

    `headers` is looked up case-insensitively (aiohttp's CIMultiDictProxy, or any mapping).
    """
    if not isinstance(headers, CIMultiDictProxy | CIMultiDict):
        headers = CIMultiDict(headers)
    document = parse_json(body)
    common: dict[str, Any] = {
        "credits_remaining": header_float(headers, "x-credits-remaining"),
        "rate_remaining": header_int(headers, "ratelimit-remaining", "x-ratelimit-remaining"),
        "rate_reset_s": header_float(headers, "ratelimit-reset", "x-ratelimit-reset"),
    }
    if status == 200 and isinstance(document, dict):
        return profile_outcome(document, common)
    if status == 200:
        return Outcome("retry", f"HTTP 200 with a body that is not JSON: {snippet(body)}", **common)
    problem = first_problem(document)
    message = problem_message(status, problem, document, body)
    if status == 404:
        return Outcome("not_found", message, **common)
    if status == 400 or status == 422:
        return Outcome("rejected", message, **common)
    if status == 401 or status == 403:
        return Outcome("auth", message, **common)
    if status == 402:
        context = problem.get("context") or {}
        return Outcome(
            "no_credits",
            message,
            credits_required=as_float(context.get("required")),
            credits_available=as_float(context.get("available")),
            **common,
        )
    if status == 429:
        return Outcome("throttled", message, retry_after_s=retry_after(headers, problem), **common)
    return Outcome("retry", message, **common)


def profile_outcome(document: dict[str, Any], common: dict[str, Any]) -> Outcome:
    """A 200 answer: found when profile_url is not null, whatever the message says."""
    profile_url = document.get("profile_url")
    message = str(document.get("message") or "")
    if profile_url in (None, ""):
        return Outcome("not_found", message or "No profile found", **common)
    credits = int(as_float(document.get("credits_consumed")) or 0)
    return Outcome("found", message or "Profile found", str(profile_url), credits, **common)


def first_problem(document: Any) -> dict[str, Any]:
    """The first RFC 9457 problem of an error body, or the body itself."""
    if not isinstance(document, dict):
        return {}
    errors = document.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return document


def problem_message(status: int, problem: dict[str, Any], document: Any, body: bytes) -> str:
    """A one-line reason: HTTP status, the API's title and detail, its request id."""
    if not problem:
        if body.lstrip()[:1] == b"<":
            return f"HTTP {status}: the server sent an HTML error page (a proxy or gateway error)"
        return f"HTTP {status}: {snippet(body)}" if body.strip() else f"HTTP {status}"
    parts = [f"HTTP {status}"]
    title = problem.get("title") or problem.get("code") or problem.get("error")
    detail = problem.get("detail") or problem.get("message")
    if title:
        parts.append(str(title))
    if detail and detail != title:
        parts.append(str(detail))
    text = ": ".join(parts[:2]) + (f" - {parts[2]}" if len(parts) > 2 else "")
    meta = document.get("meta") if isinstance(document, dict) else None
    request_id = meta.get("request_id") if isinstance(meta, dict) else None
    return f"{text} (request_id {request_id})" if request_id else text


def retry_after(headers: Mapping[str, str], problem: dict[str, Any]) -> float | None:
    """Seconds to wait after a 429, from Retry-After or the problem's context."""
    seconds = header_float(headers, "retry-after")
    if seconds is None:
        context = problem.get("context") or {}
        seconds = as_float(context.get("retry_after_seconds"))
    if seconds is None:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def header_float(headers: Mapping[str, str], *names: str) -> float | None:
    for name in names:
        value = as_float(headers.get(name))
        if value is not None:
            return value
    return None


def header_int(headers: Mapping[str, str], *names: str) -> int | None:
    value = header_float(headers, *names)
    return None if value is None else int(value)


def as_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def snippet(body: bytes, limit: int = 120) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


def auth_headers(api_key: str) -> dict[str, str]:
    return {"X-API-Key": api_key, "User-Agent": USER_AGENT}


def open_session(api_key: str, timeout_s: float, connections: int) -> aiohttp.ClientSession:
    """One session for the whole run: the key header and the per-request timeout are set once.

    The connection pool is as large as the number of workers, so a request never
    waits for a connection and the timeout counts network time only.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        headers=auth_headers(api_key),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )


async def request_profile(
    session: aiohttp.ClientSession,
    url: str,
    work_email: str | None,
    personal_email: str | None,
) -> Outcome:
    """POST one lookup; network failures and timeouts become `retry` outcomes."""
    payload = {}
    if work_email:
        payload["work_email"] = work_email
    if personal_email:
        payload["personal_email"] = personal_email
    try:
        async with session.post(url, json=payload) as response:
            body = await response.read()
            outcome = classify(response.status, response.headers, body)
            return without_key(outcome, session.headers.get("X-API-Key", ""))
    except TimeoutError:
        return Outcome("retry", f"no answer within {session.timeout.total:g} s (timeout)")
    except aiohttp.ClientError as error:
        return Outcome("retry", f"connection failed: {describe(error)}")


async def fetch_balance(session: aiohttp.ClientSession, base_url: str) -> float | None:
    """The account's credit balance (a free call), or None if it cannot be read.

    Asks GET /v1/credits, then the older POST /credits if that path is unknown.
    Raises AuthError if the key is rejected.
    """
    root = base_url.rstrip("/")
    for method, path in (("GET", CREDITS_ENDPOINT), ("POST", LEGACY_CREDITS_ENDPOINT)):
        try:
            async with session.request(method, root + path) as response:
                status, headers, body = response.status, response.headers, await response.read()
        except (TimeoutError, aiohttp.ClientError):
            return None
        if status in (401, 403):
            outcome = classify(status, headers, body)
            raise AuthError(without_key(outcome, session.headers.get("X-API-Key", "")).message)
        if status not in (404, 405):
            document = parse_json(body)
            if status != 200 or not isinstance(document, dict):
                return None
            return as_float(document.get("credits"))
    return None


def without_key(outcome: Outcome, api_key: str) -> Outcome:
    """The outcome with the key masked, should the API echo it back in an error."""
    if api_key and api_key in outcome.message:
        return dataclasses.replace(outcome, message=outcome.message.replace(api_key, "****"))
    return outcome


def describe(error: BaseException) -> str:
    """A short, key-free description of a network error."""
    name = type(error).__name__
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{name}: {text}" if text else name
