"""Every row of the API's response table, classified without a network, then over aiohttp."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aioresponses import aioresponses

from pipeline.client import classify, fetch_balance, open_session, request_profile
from pipeline.errors import AuthError

URL = "https://api.leadmagic.io/v1/people/b2b-profile"


def problem(status: int, code: str, title: str, detail: str, **context: object) -> bytes:
    error = {"status": status, "code": code, "title": title, "detail": detail}
    if context:
        error["context"] = context
    return json.dumps(
        {"success": False, "errors": [error], "meta": {"request_id": "req_abc123"}}
    ).encode()


def test_200_found_keeps_profile_url_as_given() -> None:
    body = b'{"profile_url": "jouellette", "credits_consumed": 10, "message": "Profile URL found."}'
    outcome = classify(200, {"X-Credits-Remaining": "7333.8"}, body)
    assert (outcome.kind, outcome.profile_url, outcome.credits) == ("found", "jouellette", 10)
    assert outcome.message == "Profile URL found."
    assert outcome.credits_remaining == pytest.approx(7333.8)


def test_200_null_profile_is_a_miss_whatever_the_message() -> None:
    body = b'{"profile_url": null, "credits_consumed": 0, "message": "Profile URL found"}'
    outcome = classify(200, {}, body)
    assert (outcome.kind, outcome.profile_url, outcome.credits) == ("not_found", None, 0)


def test_404_profile_not_found_is_a_miss() -> None:
    body = problem(404, "profile_not_found", "Profile not found", "No profile for this email.")
    outcome = classify(404, {}, body)
    assert outcome.kind == "not_found"
    assert outcome.credits == 0


def test_400_is_rejected_with_detail_and_request_id() -> None:
    body = problem(400, "validation_error", "Validation error", "work_email is malformed")
    outcome = classify(400, {}, body)
    assert outcome.kind == "rejected"
    assert outcome.message == (
        "HTTP 400: Validation error - work_email is malformed (request_id req_abc123)"
    )


@pytest.mark.parametrize("code", ["missing_authentication", "invalid_api_key"])
def test_401_is_auth(code: str) -> None:
    assert classify(401, {}, problem(401, code, "Unauthorized", "bad key")).kind == "auth"


def test_402_carries_required_and_available() -> None:
    body = problem(
        402, "insufficient_credits", "Insufficient credits", "Top up.", required=10, available=3
    )
    outcome = classify(402, {}, body)
    assert outcome.kind == "no_credits"
    assert (outcome.credits_required, outcome.credits_available) == (10, 3)


def test_429_reads_retry_after_header_first() -> None:
    body = problem(429, "rate_limit_exceeded", "Rate limited", "Slow down", retry_after_seconds=9)
    outcome = classify(429, {"Retry-After": "4"}, body)
    assert (outcome.kind, outcome.retry_after_s) == ("throttled", 4.0)


def test_429_falls_back_to_context_and_caps_at_60s() -> None:
    body = problem(429, "rate_limit_exceeded", "Rate limited", "x", retry_after_seconds=7)
    assert classify(429, {}, body).retry_after_s == 7.0
    assert classify(429, {"retry-after": "3600"}, body).retry_after_s == 60.0


def test_500_is_retry() -> None:
    body = problem(500, "INTERNAL_ERROR", "Internal error", "Wait 30 seconds and retry.")
    outcome = classify(500, {}, body)
    assert outcome.kind == "retry"
    assert outcome.message.startswith("HTTP 500: Internal error - Wait 30 seconds")


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_html_pages_are_retry_and_named(status: int) -> None:
    outcome = classify(status, {}, b"<html><body><h1>Bad Gateway</h1></body></html>")
    assert outcome.kind == "retry"
    assert outcome.message == (
        f"HTTP {status}: the server sent an HTML error page (a proxy or gateway error)"
    )


def test_rate_limit_headers_are_read() -> None:
    body = b'{"profile_url": null, "credits_consumed": 0, "message": "none"}'
    outcome = classify(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "12"}, body)
    assert (outcome.rate_remaining, outcome.rate_reset_s) == (0, 12.0)
    legacy = classify(200, {"X-RateLimit-Remaining": "3"}, body)
    assert legacy.rate_remaining == 3


def lookup(mocked: aioresponses, **kwargs: object) -> object:
    async def go() -> object:
        async with open_session("k", 0.5, 4) as session:
            return await request_profile(session, URL, "a@b.com", None)

    mocked.post(URL, **kwargs)
    return asyncio.run(go())


def test_request_sends_key_header_and_json_body() -> None:
    with aioresponses() as mocked:
        outcome = lookup(
            mocked,
            status=200,
            payload={"profile_url": "linkedin.com/in/a", "credits_consumed": 10, "message": "ok"},
        )
        ((_, calls),) = mocked.requests.items()
        assert calls[0].kwargs["json"] == {"work_email": "a@b.com"}
    assert outcome.kind == "found"


def test_timeout_is_retry() -> None:
    with aioresponses() as mocked:
        outcome = lookup(mocked, exception=TimeoutError())
    assert outcome.kind == "retry"
    assert "timeout" in outcome.message


def test_dropped_connection_is_retry() -> None:
    with aioresponses() as mocked:
        outcome = lookup(mocked, exception=aiohttp.ServerDisconnectedError())
    assert outcome.kind == "retry"
    assert outcome.message.startswith("connection failed: ServerDisconnectedError")


def test_html_502_over_http_is_retry_not_a_traceback() -> None:
    with aioresponses() as mocked:
        outcome = lookup(mocked, status=502, body="<html>Bad gateway</html>")
    assert outcome.kind == "retry"
    assert "HTML error page" in outcome.message


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            200,
            {"profile_url": "linkedin.com/in/a", "credits_consumed": 10, "message": "ok"},
            "found",
        ),
        (200, {"profile_url": None, "credits_consumed": 0, "message": "none"}, "not_found"),
        (400, {"errors": [{"code": "validation_error", "title": "Bad"}]}, "rejected"),
        (401, {"errors": [{"code": "invalid_api_key", "title": "Key"}]}, "auth"),
        (402, {"errors": [{"code": "insufficient_credits", "title": "Credits"}]}, "no_credits"),
        (404, {"errors": [{"code": "profile_not_found", "title": "Miss"}]}, "not_found"),
        (429, {"errors": [{"code": "rate_limit_exceeded", "title": "Slow"}]}, "throttled"),
        (500, {"errors": [{"code": "INTERNAL_ERROR", "title": "Oops"}]}, "retry"),
        (502, None, "retry"),
        (503, None, "retry"),
        (504, None, "retry"),
    ],
)
def test_every_row_of_the_api_table_over_http(status: int, body: object, kind: str) -> None:
    with aioresponses() as mocked:
        if body is None:
            outcome = lookup(mocked, status=status, body="<html>gateway</html>")
        else:
            outcome = lookup(mocked, status=status, payload=body)
    assert outcome.kind == kind


def balance(mocked: aioresponses) -> float | None:
    async def go() -> float | None:
        async with open_session("lm_test_key_0123456789", 0.5, 1) as session:
            return await fetch_balance(session, "https://api.leadmagic.io")

    return asyncio.run(go())


def test_balance_from_v1_credits() -> None:
    with aioresponses() as mocked:
        mocked.get("https://api.leadmagic.io/v1/credits", payload={"credits": 7333.8})
        assert balance(mocked) == pytest.approx(7333.8)


def test_balance_falls_back_to_legacy_post_credits() -> None:
    with aioresponses() as mocked:
        mocked.get("https://api.leadmagic.io/v1/credits", status=404)
        mocked.post("https://api.leadmagic.io/credits", payload={"credits": 12})
        assert balance(mocked) == 12


def test_balance_unreadable_is_none_and_rejected_key_raises() -> None:
    with aioresponses() as mocked:
        mocked.get("https://api.leadmagic.io/v1/credits", status=503, body="<html></html>")
        assert balance(mocked) is None
    with aioresponses() as mocked:
        body = {"errors": [{"title": "Invalid API key", "code": "invalid_api_key"}]}
        mocked.get("https://api.leadmagic.io/v1/credits", status=401, payload=body)
        with pytest.raises(AuthError, match="HTTP 401: Invalid API key"):
            balance(mocked)
