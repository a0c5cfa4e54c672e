"""Shared fixtures: a simulator on a free loopback port, and the CLI run in-process."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aioresponses.core
import polars as pl
import pytest
from aiohttp import ClientResponse

from pipeline.cli import main
from pipeline.simulator import Simulator, SimulatorSettings, profile_for, running

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "data" / "sample" / "contacts.csv"
SAMPLE_PARQUET = ROOT / "data" / "sample" / "contacts.parquet"
API_KEY = "test-key-0123456789abcdef"
SIMPLE_EMAIL = re.compile(r"^[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$")


class _SentStream:
    output_size = 0


class _MockResponse(ClientResponse):
    """aiohttp 3.14 made `stream_writer` required; aioresponses 0.7.x does not pass it yet
    (pnuckowski/aioresponses#289). Test-only shim: aiohttp 3.14 is a security release."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("stream_writer", _SentStream())
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


aioresponses.core.ClientResponse = _MockResponse  # type: ignore[misc]


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[tuple[Simulator, str]]:
    """A simulator accepting API_KEY; tune it with @pytest.mark.simulator(rate=..., ...)."""
    marker = request.node.get_closest_marker("simulator")
    options = dict(marker.kwargs) if marker else {}
    with running(SimulatorSettings(api_key=API_KEY, **options)) as (sim, url):
        yield sim, url


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADMAGIC_API_KEY", API_KEY)
    for name in ("LEADMAGIC_BASE_URL",):
        monkeypatch.delenv(name, raising=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulator(**settings): SimulatorSettings for the test")


@contextmanager
def simulator_process(*args: object) -> Iterator[str]:
    """`b2b-enrich simulator` as a separate process on a free loopback port; yields its URL."""
    command = [sys.executable, "-m", "pipeline", "simulator", "--port", "0"]
    process = subprocess.Popen(command + [str(a) for a in args], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        match = re.search(r"http://\S+", process.stdout.readline())
        assert match, "the simulator did not start"
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(10)


def run_cli(*args: object) -> int:
    """Run `b2b-enrich ARGS` in this process; return its exit code."""
    return main([str(a) for a in args])


def enrich(url: str, source: Path, output: Path, *extra: object) -> int:
    """`b2b-enrich run` against a simulator at `url`, fast and quiet; later flags win."""
    return run_cli(
        "run", source, "-o", output, "--base-url", url, "--rate", 500, "--no-progress", *extra
    )


def write_contacts(path: Path, emails: list[str]) -> Path:
    """A minimal contact file: an id column and an Email column."""
    pl.DataFrame({"id": list(range(len(emails))), "Email": emails}).write_csv(path)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def reference_email(cell: str) -> str | None:
    """An independent normaliser for the sample's simple cells."""
    value = cell.strip().lower()
    return value if SIMPLE_EMAIL.match(value) else None


def expected_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """What the output must hold for each input row, computed without the pipeline."""
    seen: set[tuple[str | None, str | None]] = set()
    expected = []
    for row in rows:
        work = reference_email(row.get("Email", ""))
        personal = reference_email(row.get("Personal Email", ""))
        raw = (row.get("Email", "") + row.get("Personal Email", "")).strip()
        if work is None and personal is None:
            status = "invalid_email" if raw else "no_email"
            expected.append({"profile_url": "", "credits_consumed": "0", "lookup_status": status})
            continue
        url = profile_for(work or personal or "", 0.5)
        first = (work, personal) not in seen
        seen.add((work, personal))
        credits = "10" if url and first else "0"
        expected.append(
            {
                "profile_url": url or "",
                "credits_consumed": credits,
                "lookup_status": "found" if url else "not_found",
            }
        )
    return expected


def load_json(path: Path) -> dict[str, object]:
    return json.loads(path.read_text(encoding="utf-8"))
