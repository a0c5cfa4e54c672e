"""The real CLI against the simulator on a free loopback port: what a user gets."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.request import urlopen

import polars as pl
import pytest

from conftest import (
    API_KEY,
    SAMPLE_CSV,
    SAMPLE_PARQUET,
    enrich,
    expected_rows,
    load_json,
    read_csv,
    run_cli,
    simulator_process,
    write_contacts,
)
from pipeline.simulator import Simulator

pytestmark = pytest.mark.usefixtures("api_env")
ADDED = ("profile_url", "credits_consumed", "lookup_status")


def test_sample_csv_is_enriched_exactly(simulator: tuple[Simulator, str], tmp_path: Path) -> None:
    sim, url = simulator
    output, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    assert enrich(url, SAMPLE_CSV, output, "--summary-json", summary) == 0

    source, result = read_csv(SAMPLE_CSV), read_csv(output)
    assert len(result) == len(source)
    for original, enriched, expected in zip(source, result, expected_rows(source), strict=True):
        assert {k: enriched[k] for k in original} == original  # original columns untouched
        assert {k: enriched[k] for k in ADDED} == expected
        assert enriched["lookup_message"] != ""

    paid = sum(int(row["credits_consumed"]) for row in result)
    assert paid == sim.stats.credits_charged > 0
    assert max(sim.stats.charges.values()) == 1  # duplicates paid once
    assert max(sim.stats.answered.values()) == 1  # one request per unique lookup
    facts = load_json(summary)
    statuses = [row["lookup_status"] for row in result]
    assert facts["rows"] == len(source)
    assert facts["found"] == statuses.count("found")
    assert facts["not_found"] == statuses.count("not_found")
    assert facts["invalid_emails"] == statuses.count("invalid_email")
    assert facts["rows_with_email"] == len(source) - statuses.count("no_email")
    assert facts["unique_lookups"] == facts["api_calls"] == sim.stats.requests
    assert facts["credits_consumed"] == facts["credits_this_run"] == paid
    assert (facts["pending"], facts["failed"], facts["cache_hits"]) == (0, 0, 0)
    assert facts["status"] == "complete"


def test_sample_parquet_keeps_dtypes_and_matches_csv(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    _, url = simulator
    output = tmp_path / "out.parquet"
    assert enrich(url, SAMPLE_PARQUET, output) == 0
    original, result = pl.read_parquet(SAMPLE_PARQUET), pl.read_parquet(output)
    assert result.select(original.columns).equals(original)
    assert result.schema["Record ID"] == pl.Int64 and result.schema["Create Date"] == pl.Date
    expected = expected_rows(read_csv(SAMPLE_CSV))
    assert result["lookup_status"].to_list() == [e["lookup_status"] for e in expected]
    assert result["credits_consumed"].to_list() == [int(e["credits_consumed"]) for e in expected]


def test_rerun_of_finished_job_sends_nothing_and_writes_same_output(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    output, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    assert enrich(url, SAMPLE_CSV, output) == 0
    first, requests = output.read_bytes(), sim.stats.requests
    assert enrich(url, SAMPLE_CSV, output, "--summary-json", summary) == 0
    assert sim.stats.requests == requests
    assert output.read_bytes() == first
    facts = load_json(summary)
    assert facts["api_calls"] == 0 and facts["credits_this_run"] == 0
    assert facts["cache_hits"] == facts["unique_lookups"]
    assert facts["credits_consumed"] > 0  # still this job's credits, paid by its first run


def test_strict_server_rate_is_never_exceeded(tmp_path: Path) -> None:
    # The strict server runs in its own process, so its arrival stamps are not
    # delayed by this process's event loop or GIL.
    source = write_contacts(tmp_path / "c.csv", [f"p{i}@corp.com" for i in range(45)])
    output = tmp_path / "out.csv"
    with simulator_process("--rate", 10, "--api-key", API_KEY) as url:
        code = run_cli(
            "run", source, "-o", output, "--base-url", url, "--rate", 10, "--concurrency", 32
        )
        stats = json.loads(urlopen(url + "/_simulator/stats", timeout=10).read())
    assert code == 0
    assert stats["over_limit"] == 0
    assert stats["max_in_any_second"] <= 10
    assert stats["requests"] == 45


@pytest.mark.simulator(balance=200)
def test_out_of_credits_stops_then_resumes_without_paying_twice(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    output, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    assert enrich(url, SAMPLE_CSV, output, "--summary-json", summary) == 3
    error = capsys.readouterr().err
    assert "ran out of credits: 10 needed, 0 available" in error
    assert "run the same command again to resume" in error
    stopped = read_csv(output)
    statuses = {row["lookup_status"] for row in stopped}
    assert "pending" in statuses and "found" in statuses
    assert load_json(summary)["status"] == "incomplete"
    assert sim.stats.credits_charged == 200

    sim.balance = 1_000_000  # the user tops up
    assert enrich(url, SAMPLE_CSV, output, "--summary-json", summary) == 0
    result = read_csv(output)
    assert [{k: r[k] for k in ADDED} for r in result] == expected_rows(read_csv(SAMPLE_CSV))
    assert max(sim.stats.charges.values()) == 1
    assert max(sim.stats.answered.values()) == 1
    assert sum(int(r["credits_consumed"]) for r in result) == sim.stats.credits_charged
    assert load_json(summary)["credits_consumed"] == sim.stats.credits_charged


@pytest.mark.simulator(not_found_status=404)
def test_404_misses_read_like_200_misses(simulator: tuple[Simulator, str], tmp_path: Path) -> None:
    _, url = simulator
    output = tmp_path / "out.csv"
    assert enrich(url, SAMPLE_CSV, output) == 0
    result = read_csv(output)
    assert [{k: r[k] for k in ADDED} for r in result] == expected_rows(read_csv(SAMPLE_CSV))


@pytest.mark.simulator(error_rate=0.08, html_error_rate=0.05, drop_rate=0.04, throttle_rate=0.03)
def test_faults_are_retried_until_every_row_is_final(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    output, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    code = enrich(
        url, SAMPLE_CSV, output, "--backoff", 0.01, "--max-retries", 10, "--summary-json", summary
    )
    assert code == 0
    assert sim.stats.faults > 0
    result = read_csv(output)
    assert [{k: r[k] for k in ADDED} for r in result] == expected_rows(read_csv(SAMPLE_CSV))
    facts = load_json(summary)
    assert facts["retries"] + facts["throttled"] == sim.stats.faults
    assert facts["api_calls"] == sim.stats.requests


@pytest.mark.simulator(error_rate=1.0)
def test_retries_exhausted_rows_fail_with_reason_and_exit_3(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    source = write_contacts(tmp_path / "c.csv", ["a@corp.com", "b@corp.com", "A@corp.com "])
    output, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    code = enrich(
        url, source, output, "--backoff", 0, "--max-retries", 2, "--summary-json", summary
    )
    assert code == 3
    assert sim.stats.requests == 2 * 3  # two lookups, 1 try + 2 retries each
    result = read_csv(output)
    assert [r["lookup_status"] for r in result] == ["failed"] * 3
    assert result[0]["lookup_message"].startswith("HTTP 500: Internal error - Wait 30 seconds")
    assert "(request_id req_" in result[0]["lookup_message"]
    facts = load_json(summary)
    assert facts["failures_by_cause"] == {"HTTP 500": 2}
    assert facts["status"] == "incomplete"


def test_rejected_key_exits_4_without_echoing_it(
    simulator: tuple[Simulator, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim, url = simulator
    wrong = "wrong-key-abcdef0123456789"
    monkeypatch.setenv("LEADMAGIC_API_KEY", wrong)
    assert enrich(url, SAMPLE_CSV, tmp_path / "out.csv") == 4
    captured = capsys.readouterr()
    assert "the API rejected the key in LEADMAGIC_API_KEY" in captured.err
    assert wrong not in captured.err + captured.out
    assert API_KEY not in captured.err + captured.out
    assert sim.stats.found == 0


def test_missing_key_exits_2_and_says_how_to_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEADMAGIC_API_KEY")
    assert run_cli("run", SAMPLE_CSV, "-o", tmp_path / "out.csv") == 2
    assert "export LEADMAGIC_API_KEY=" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_file_without_email_column_exits_2_listing_columns(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    source = tmp_path / "people.csv"
    source.write_text("Name,Phone\nAlex,123\n", encoding="utf-8")
    assert enrich(url, source, tmp_path / "out.csv") == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"b2b-enrich: error: {source}: no email column found among ['Name', 'Phone']; "
        "name one with --work-email-column NAME (or --personal-email-column NAME)"
    )
    assert sim.stats.requests == 0
    assert not (tmp_path / "out.csv.checkpoint.sqlite").exists()


def test_simulate_flag_needs_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADMAGIC_API_KEY")
    output = tmp_path / "out.csv"
    code = run_cli("run", SAMPLE_CSV, "-o", output, "--simulate", "--rate", 200, "--no-progress")
    assert code == 0
    result = read_csv(output)
    assert [{k: r[k] for k in ADDED} for r in result] == expected_rows(read_csv(SAMPLE_CSV))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_header_only_input_gives_header_only_output(
    simulator: tuple[Simulator, str], tmp_path: Path, suffix: str
) -> None:
    sim, url = simulator
    source = tmp_path / "header.csv"
    source.write_text("Record ID,Email\n", encoding="utf-8")
    output = tmp_path / f"out{suffix}"
    assert enrich(url, source, output) == 0
    result = pl.read_csv(output) if suffix == ".csv" else pl.read_parquet(output)
    assert result.height == 0
    assert result.columns == [
        "Record ID",
        "Email",
        "profile_url",
        "credits_consumed",
        "lookup_status",
        "lookup_message",
    ]
    assert sim.stats.requests == 0


def test_half_written_files_of_killed_runs_are_cleaned_up(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    _, url = simulator
    output = tmp_path / "out.csv"
    dead = tmp_path / ".out.csv.99999999.tmp"  # no such process
    dead.write_text("half", encoding="utf-8")
    assert enrich(url, SAMPLE_CSV, output) == 0
    assert not dead.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
