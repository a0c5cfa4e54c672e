"""Live progress: a bar on a terminal, a log line about every 10 s elsewhere."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from pipeline.pool import PoolStats
from pipeline.progress import LiveBar, LogLines


def stats() -> PoolStats:
    return PoolStats(total=200, done=50, api_calls=60, retries=7, throttled=2, credits=250)


def test_live_bar_shows_done_total_credits_retries_and_429s() -> None:
    screen = io.StringIO()
    bar = LiveBar(Console(file=screen, force_terminal=True, width=160))
    bar(stats())
    bar.close()
    text = screen.getvalue()
    for fragment in ("50/200", "250 credits", "7 retries", "2 x 429"):
        assert fragment in text


def test_log_lines_every_ten_seconds_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    lines = LogLines()
    with caplog.at_level(logging.INFO, logger="b2b_enrich"):
        lines(stats())
        lines(stats())  # within 10 s: nothing more
    (record,) = caplog.records
    assert record.getMessage().startswith("lookups 50/200 ")
    assert record.counts == {  # type: ignore[attr-defined]
        "done": 50,
        "total": 200,
        "api_calls": 60,
        "credits": 250,
        "retries": 7,
        "throttled": 2,
    }
