"""Never lose a paid result, never pay twice: kill -9, signals, a shared cache, freshness."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import API_KEY, load_json, read_csv, run_cli, write_contacts
from pipeline.simulator import Simulator, SimulatorSettings, running

pytestmark = pytest.mark.usefixtures("api_env")
ADDED = ("profile_url", "credits_consumed", "lookup_status", "lookup_message")


def contacts(path: Path, count: int, start: int = 0, duplicates: bool = True) -> Path:
    emails = [f"person{i}@corp{i % 7}.com" for i in range(start, start + count)]
    if duplicates:
        emails += [e.upper() for e in emails[::5]]
    return write_contacts(path, emails)


def start_cli(url: str, source: Path, output: Path, *extra: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pipeline", "run", str(source), "-o", str(output)]
    command += ["--base-url", url, "--no-progress", *[str(e) for e in extra]]
    env = dict(os.environ, LEADMAGIC_API_KEY=API_KEY)
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_requests(sim: Simulator, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sim.stats.requests < count:
        assert time.monotonic() < deadline, "the run never reached the simulator"
        time.sleep(0.01)


def test_kill_9_at_any_moment_then_resume_pays_each_lookup_once(tmp_path: Path) -> None:
    source = contacts(tmp_path / "c.csv", 240)
    concurrency = 8
    settings = SimulatorSettings(api_key=API_KEY, latency_ms=40)
    with running(settings) as (sim, url):
        output = tmp_path / "out.csv"
        args = ("--rate", 200, "--concurrency", concurrency)
        kills = 0
        for reached in (10, 60, 120, 170):
            process = start_cli(url, source, output, *args)
            wait_for_requests(sim, reached)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
        finished = start_cli(url, source, output, *args)
        assert finished.wait(60) == 0, finished.stderr.read() if finished.stderr else ""
        twice = sum(1 for n in sim.stats.charges.values() if n > 1)
        asked_twice = sum(n - 1 for n in sim.stats.answered.values() if n > 1)
        # Only responses in flight at a kill can be paid again.
        assert asked_twice <= kills * concurrency
        assert twice <= asked_twice
        resumed = read_csv(output)
    with running(SimulatorSettings(api_key=API_KEY)) as (_, clean_url):
        reference = tmp_path / "reference.csv"
        assert run_cli("run", source, "-o", reference, "--base-url", clean_url, "--rate", 500) == 0
    assert resumed == read_csv(reference)  # identical to an uninterrupted run


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finishes_in_flight_writes_output_and_exits_3(
    tmp_path: Path, signum: signal.Signals
) -> None:
    source = contacts(tmp_path / "c.csv", 200, duplicates=False)
    with running(SimulatorSettings(api_key=API_KEY, latency_ms=50)) as (sim, url):
        output = tmp_path / "out.csv"
        process = start_cli(url, source, output, "--rate", 40)
        wait_for_requests(sim, 20)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 3
        assert "stopped: interrupted; run the same command again to resume" in stderr
        stopped = read_csv(output)
        statuses = [row["lookup_status"] for row in stopped]
        assert "pending" in statuses
        answered = sum(1 for s in statuses if s in ("found", "not_found"))
        assert answered == sim.stats.requests  # every response that came back was kept
        finished = start_cli(url, source, output, "--rate", 200)
        assert finished.wait(60) == 0
        assert max(sim.stats.answered.values()) == 1
        assert "pending" not in {row["lookup_status"] for row in read_csv(output)}


def test_shared_cache_means_a_grown_export_pays_only_for_new_lookups(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    cache = tmp_path / "team-cache.sqlite"
    monday = contacts(tmp_path / "monday.csv", 60, duplicates=False)
    tuesday = contacts(tmp_path / "tuesday.csv", 80, duplicates=False)  # 60 old + 20 new
    summary = tmp_path / "s.json"
    common = ("--base-url", url, "--rate", 500, "--checkpoint", cache, "--summary-json", summary)
    assert run_cli("run", monday, "-o", tmp_path / "monday.out.csv", *common) == 0
    monday_paid = sim.stats.credits_charged
    assert run_cli("run", tuesday, "-o", tmp_path / "tuesday.out.csv", *common) == 0
    assert sim.stats.requests == 80
    assert max(sim.stats.answered.values()) == 1
    facts = load_json(summary)
    rows = read_csv(tmp_path / "tuesday.out.csv")
    new_paid = sum(int(r["credits_consumed"]) for r in rows)
    assert new_paid == facts["credits_consumed"] == sim.stats.credits_charged - monday_paid
    assert all(r["credits_consumed"] == "0" for r in rows[:60])  # another job paid for these
    assert facts["cache_hits"] == 60
    old_found = sum(1 for r in rows[:60] if r["lookup_status"] == "found")
    assert facts["credits_saved"] == old_found * 10


def age_results(checkpoint: Path, days: float) -> None:
    with sqlite3.connect(checkpoint) as db:
        db.execute("UPDATE lookups SET fetched_at = fetched_at - ?", (days * 86400,))


def test_freshness_rechecks_misses_after_30_days_and_found_after_90(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 40, duplicates=False)
    output = tmp_path / "out.csv"
    checkpoint = tmp_path / "out.csv.checkpoint.sqlite"
    assert run_cli("run", source, "-o", output, "--base-url", url, "--rate", 500) == 0
    found, missed = sim.stats.found, sim.stats.not_found
    age_results(checkpoint, 31)
    assert run_cli("run", source, "-o", output, "--base-url", url, "--rate", 500) == 0
    assert (sim.stats.found, sim.stats.not_found) == (found, 2 * missed)
    age_results(checkpoint, 91)
    assert run_cli("run", source, "-o", output, "--base-url", url, "--rate", 500) == 0
    assert (sim.stats.found, sim.stats.not_found) == (2 * found, 3 * missed)
    assert run_cli("run", source, "-o", output, "--base-url", url, "--rate", 500) == 0
    requests = sim.stats.requests
    assert requests == 40 + missed + 40  # nothing asked on the fresh rerun
    assert run_cli("run", source, "-o", output, "--base-url", url, "--refresh", "--rate", 500) == 0
    assert sim.stats.requests == requests + 40
    extra = ("--max-age-found", 0, "--max-age-miss", 0)
    assert run_cli("run", source, "-o", output, "--base-url", url, "--rate", 500, *extra) == 0
    assert sim.stats.requests == requests + 80


@pytest.mark.simulator(error_rate=1.0)
def test_failed_lookups_are_retried_next_run_rejected_ones_only_on_request(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    source = tmp_path / "c.csv"
    source.write_text("Email\na@corp.com\nb@bad.invalid\n", encoding="utf-8")
    output = tmp_path / "out.csv"
    base = ("run", source, "-o", output, "--base-url", url, "--backoff", 0, "--max-retries", 1)
    assert run_cli(*base) == 3
    assert [r["lookup_status"] for r in read_csv(output)] == ["failed", "failed"]
    sim.settings.error_rate = 0.0
    assert run_cli(*base) == 0  # the 400 is final: exit 0
    rows = read_csv(output)
    assert rows[0]["lookup_status"] in ("found", "not_found")
    assert rows[1]["lookup_status"] == "failed"
    assert rows[1]["lookup_message"].startswith("HTTP 400: Validation error")
    requests = sim.stats.requests
    assert run_cli(*base) == 0
    assert sim.stats.requests == requests  # rejected: not asked again
    assert run_cli(*base, "--retry-failed") == 0
    assert sim.stats.requests == requests + 1


def test_status_reports_what_the_checkpoint_holds(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    source = contacts(tmp_path / "c.csv", 30, duplicates=False)
    output = tmp_path / "out.csv"
    assert run_cli("run", source, "-o", output, "--base-url", url, "--rate", 500) == 0
    capsys.readouterr()
    assert run_cli("status", tmp_path / "out.csv.checkpoint.sqlite", "--json") == 0
    facts = __import__("json").loads(capsys.readouterr().out)
    assert (facts["found"], facts["not_found"]) == (sim.stats.found, sim.stats.not_found)
    assert facts["credits_recorded"] == sim.stats.credits_charged
    assert facts["pending"] == 0
    (job,) = facts["jobs"]
    assert job["input_path"] == str(source.resolve())
    assert (job["runs"], job["api_calls"], job["status"]) == (1, 30, "complete")
    assert run_cli("status", tmp_path / "out.csv.checkpoint.sqlite") == 0
    assert "credits recorded" in capsys.readouterr().out


def test_second_ctrl_c_stops_at_once_and_the_checkpoint_stays_consistent(tmp_path: Path) -> None:
    source = contacts(tmp_path / "c.csv", 60, duplicates=False)
    with running(SimulatorSettings(api_key=API_KEY, latency_ms=3000)) as (sim, url):
        output = tmp_path / "out.csv"
        process = start_cli(url, source, output, "--rate", 100, "--concurrency", 4)
        wait_for_requests(sim, 4)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        assert time.monotonic() - started < 2.5  # did not wait for the 3 s answers
        assert process.returncode == 3
        assert "Ctrl-C again to stop now" in stderr
        assert {row["lookup_status"] for row in read_csv(output)} == {"pending"}
        sim.settings.latency_ms = 0
        finished = start_cli(url, source, output, "--rate", 200)
        assert finished.wait(60) == 0
        assert "pending" not in {row["lookup_status"] for row in read_csv(output)}
