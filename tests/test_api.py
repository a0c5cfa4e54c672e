"""The Python API, settings precedence and logs, as schedulers use them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

from conftest import API_KEY, SAMPLE_CSV, read_csv, run_cli
from pipeline import (
    AuthError,
    BudgetReached,
    Config,
    EnrichError,
    InputError,
    OutOfCredits,
    Summary,
    enrich,
    enrich_async,
)
from pipeline.config import load_config
from pipeline.simulator import Simulator, SimulatorSettings, running


def test_enrich_returns_a_summary_that_matches_the_output(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    output = tmp_path / "out.parquet"
    summary = enrich(SAMPLE_CSV, output, api_key=API_KEY, base_url=url, rate=500)
    assert isinstance(summary, Summary)
    rows = read_csv(SAMPLE_CSV)
    result = pl.read_parquet(output)
    statuses = result["lookup_status"].to_list()
    assert summary.rows == len(rows) == result.height
    assert summary.found == statuses.count("found")
    assert summary.not_found == statuses.count("not_found")
    assert summary.credits_consumed == result["credits_consumed"].sum()
    assert summary.credits_consumed == sim.stats.credits_charged
    assert summary.api_calls == sim.stats.requests
    assert summary.status == "complete"


def test_enrich_async_inside_a_running_loop(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    _, url = simulator

    async def go() -> Summary:
        return await enrich_async(
            SAMPLE_CSV, tmp_path / "o.csv", api_key=API_KEY, base_url=url, rate=500
        )

    assert asyncio.run(go()).unique_lookups == 173


def test_enrich_raises_instead_of_exiting(simulator: tuple[Simulator, str], tmp_path: Path) -> None:
    _, url = simulator
    with pytest.raises(AuthError) as rejected:
        enrich(SAMPLE_CSV, tmp_path / "a.csv", api_key="nope-nope-nope", base_url=url)
    assert rejected.value.exit_code == 4
    with pytest.raises(InputError, match="no email column"):
        people = tmp_path / "people.csv"
        people.write_text("name\nx\n", encoding="utf-8")
        enrich(people, tmp_path / "b.csv", api_key=API_KEY, base_url=url)
    with pytest.raises(BudgetReached) as capped:
        enrich(SAMPLE_CSV, tmp_path / "c.csv", api_key=API_KEY, base_url=url, max_credits=30)
    assert isinstance(capped.value, EnrichError)
    assert isinstance(capped.value.summary, Summary)
    assert capped.value.summary.credits_this_run <= 30


def test_out_of_credits_carries_the_summary(tmp_path: Path) -> None:
    settings = SimulatorSettings(api_key=API_KEY, balance=50)
    with running(settings) as (_, url), pytest.raises(OutOfCredits) as stopped:
        enrich(SAMPLE_CSV, tmp_path / "o.csv", api_key=API_KEY, base_url=url, rate=500)
    assert stopped.value.summary.credits_this_run == 50
    assert stopped.value.summary.status == "incomplete"


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_default(tmp_path: Path) -> None:
    config, sources = load_config({}, env={})
    assert (config.rate, sources["rate"]) == (5.0, "default")


def test_precedence_file_over_default(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "s.toml", "rate = 3\nconcurrency = 4\n")
    config, sources = load_config({}, env={}, config_file=toml)
    assert (config.rate, config.concurrency) == (3.0, 4)
    assert sources["rate"] == f"config file {toml}"


def test_precedence_env_over_file(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "s.toml", "rate = 3\nbase_url = 'http://file'\n")
    env = {"B2B_ENRICH_RATE": "2", "LEADMAGIC_BASE_URL": "http://env"}
    config, sources = load_config({}, env=env, config_file=toml)
    assert (config.rate, config.base_url) == (2.0, "http://env")
    assert sources["rate"] == sources["base_url"] == "environment"


def test_precedence_flag_over_env(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "s.toml", "rate = 3\n")
    config, sources = load_config({"rate": 1.5}, env={"B2B_ENRICH_RATE": "2"}, config_file=toml)
    assert (config.rate, sources["rate"]) == (1.5, "flag")


def test_bad_settings_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown settings \\['rat'\\]"):
        load_config({}, env={}, config_file=write_toml(tmp_path / "s.toml", "rat = 3\n"))
    with pytest.raises(InputError, match="B2B_ENRICH_RATE: 'fast' is not a valid value"):
        load_config({}, env={"B2B_ENRICH_RATE": "fast"})
    with pytest.raises(InputError, match="--rate must be above 0"):
        load_config({"rate": 0}, env={})


def test_default_toml_documents_every_setting() -> None:
    text = (Path(__file__).parent.parent / "configs" / "default.toml").read_text("utf-8")
    from pipeline.config import SETTINGS

    for name in SETTINGS:
        assert f"{name} =" in text, name
    config, _ = load_config({}, env={}, config_file=Path("configs/default.toml"))
    assert config == Config()


def test_config_show_masks_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADMAGIC_API_KEY", API_KEY)
    monkeypatch.setenv("B2B_ENRICH_CONCURRENCY", "7")
    assert run_cli("config", "--show", "--json") == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["concurrency"] == {"value": 7, "source": "environment"}
    assert shown["api_key"]["value"] == "**** (set)"
    assert API_KEY not in out


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_key_never_appears_even_when_the_api_echoes_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    log_format: str,
) -> None:
    leaked = "sk_live_wrong_key_123456789"
    monkeypatch.setenv("LEADMAGIC_API_KEY", leaked)
    settings = SimulatorSettings(api_key=API_KEY, echo_key=True)
    with running(settings) as (_, url):
        code = run_cli(
            "run",
            SAMPLE_CSV,
            "-o",
            tmp_path / "o.csv",
            "--base-url",
            url,
            "--log-format",
            log_format,
            "--summary-json",
            tmp_path / "s.json",
        )
    assert code == 4
    captured = capsys.readouterr()
    assert leaked not in captured.out + captured.err
    assert "Invalid API key" in captured.err and "****" in captured.err
    for path in tmp_path.iterdir():
        assert leaked.encode() not in path.read_bytes()
    if log_format == "json":
        lines = [json.loads(line) for line in captured.err.splitlines()]
        assert lines[-1]["level"] == "error" and lines[-1]["event"] == "error"


def test_emails_are_masked_in_logs_unless_asked() -> None:
    import logging

    from pipeline.cli import MaskEmails

    record = logging.LogRecord(
        "b2b_enrich", logging.INFO, "", 0, "asked %s", ("alex@acme.com",), None
    )
    MaskEmails().filter(record)
    assert record.getMessage() == "asked a***@acme.com"
