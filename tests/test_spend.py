"""Spend control and resilience: estimate, budget cap, preflight, 402, 429, timeouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SAMPLE_CSV, expected_rows, load_json, read_csv, run_cli, write_contacts
from pipeline.simulator import Simulator

pytestmark = pytest.mark.usefixtures("api_env")
ADDED = ("profile_url", "credits_consumed", "lookup_status")


def contacts(path: Path, count: int) -> Path:
    return write_contacts(path, [f"buyer{i}@shop{i % 5}.com" for i in range(count)])


def test_estimate_is_exact_on_the_sample_and_sends_no_lookup(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    rows = read_csv(SAMPLE_CSV)
    expected = expected_rows(rows)
    statuses = [e["lookup_status"] for e in expected]
    unique = len(
        {
            (r["Email"].strip().lower(), r["Personal Email"].strip().lower())
            for r, e in zip(rows, expected, strict=True)
            if e["lookup_status"] in ("found", "not_found")
        }
    )
    assert run_cli("estimate", SAMPLE_CSV, "--base-url", url, "--json") == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["rows"] == len(rows) == 214
    assert facts["rows_with_email"] == len(rows) - statuses.count("no_email")
    assert facts["invalid_emails"] == statuses.count("invalid_email")
    assert facts["unique_lookups"] == facts["to_look_up"] == unique
    assert facts["known_in_checkpoint"] == 0
    assert facts["worst_case_credits"] == unique * 10
    assert facts["expected_duration_s"] == round(unique / 5, 1)
    assert facts["balance"] == sim.balance and facts["balance_covers_worst_case"] is True
    assert sim.stats.requests == 0

    output = tmp_path / "out.csv"
    assert run_cli("run", SAMPLE_CSV, "-o", output, "--base-url", url, "--rate", 500) == 0
    capsys.readouterr()
    assert run_cli("estimate", SAMPLE_CSV, "-o", output, "--base-url", url, "--json") == 0
    after = json.loads(capsys.readouterr().out)
    assert (after["known_in_checkpoint"], after["worst_case_credits"]) == (unique, 0)


def test_max_credits_is_never_exceeded_even_with_high_concurrency(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 150)
    output, summary = tmp_path / "out.csv", tmp_path / "s.json"
    common = ("run", source, "-o", output, "--base-url", url, "--rate", 500, "--concurrency", 64)
    assert run_cli(*common, "--max-credits", 95, "--summary-json", summary) == 3
    assert sim.stats.credits_charged <= 95
    assert "--max-credits 95" in capsys.readouterr().err
    facts = load_json(summary)
    assert facts["credits_this_run"] == sim.stats.credits_charged
    assert facts["stop_reason"] == "budget" and facts["pending"] > 0
    charged = sim.stats.credits_charged
    assert run_cli(*common, "--max-credits", 100000, "--summary-json", summary) == 0
    assert max(sim.stats.answered.values()) == 1
    assert load_json(summary)["credits_consumed"] == sim.stats.credits_charged > charged


@pytest.mark.simulator(balance=30)
def test_require_balance_stops_before_any_lookup(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 20)
    code = run_cli("run", source, "-o", tmp_path / "o.csv", "--base-url", url, "--require-balance")
    assert code == 3
    error = capsys.readouterr().err
    assert "balance (30 credits) is below this run's worst case (200 credits" in error
    assert sim.stats.requests == 0


@pytest.mark.simulator(balance=100)
def test_402_mid_run_stops_dispatch_at_once(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 200)
    args = ("--rate", 500, "--concurrency", 8)
    assert run_cli("run", source, "-o", tmp_path / "o.csv", "--base-url", url, *args) == 3
    error = capsys.readouterr().err
    assert "below this run's worst case" in error  # the preflight warned first
    assert "ran out of credits: 10 needed, 0 available" in error
    assert 1 <= sim.stats.no_credits <= 8  # only requests already in flight
    assert sim.stats.credits_charged == 100


@pytest.mark.simulator(rate=5)
def test_server_limit_at_half_the_rate_still_completes(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 20)
    output, summary = tmp_path / "out.csv", tmp_path / "s.json"
    code = run_cli(
        "run", source, "-o", output, "--base-url", url, "--rate", 10, "--summary-json", summary
    )
    assert code == 0
    facts = load_json(summary)
    assert facts["throttled"] == sim.stats.over_limit > 0
    assert facts["pending"] == facts["failed"] == 0
    assert {r["lookup_status"] for r in read_csv(output)} <= {"found", "not_found"}


@pytest.mark.simulator(
    error_rate=0.06, html_error_rate=0.05, drop_rate=0.04, hang_rate=0.02, throttle_rate=0.03
)
def test_twenty_percent_faults_including_hangs_still_exact(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    output, summary = tmp_path / "out.csv", tmp_path / "s.json"
    args = ("--rate", 200, "--timeout", 0.5, "--backoff", 0.01, "--max-retries", 12)
    code = run_cli(
        "run", SAMPLE_CSV, "-o", output, "--base-url", url, *args, "--summary-json", summary
    )
    assert code == 0
    result = read_csv(output)
    assert [{k: r[k] for k in ADDED} for r in result] == expected_rows(read_csv(SAMPLE_CSV))
    facts = load_json(summary)
    assert facts["balance_after"] == sim.balance
    assert facts["credits_this_run"] == sim.stats.credits_charged


@pytest.mark.simulator(latency_ms=100)
def test_timeout_counts_network_time_not_waiting_for_the_rate_limiter(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 12)
    summary = tmp_path / "s.json"
    # 12 lookups at 4/s wait up to 3 s for their slot; each answer takes 0.1 s.
    args = ("--rate", 4, "--concurrency", 12, "--timeout", 0.5, "--summary-json", summary)
    assert run_cli("run", source, "-o", tmp_path / "o.csv", "--base-url", url, *args) == 0
    facts = load_json(summary)
    assert (facts["retries"], facts["api_calls"]) == (0, 12)
    assert sim.stats.requests == 12
