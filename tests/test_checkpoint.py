"""The checkpoint refuses what it must not touch, and plans only what is needed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import SAMPLE_CSV, run_cli
from pipeline.checkpoint import Checkpoint, Freshness, Result
from pipeline.errors import CheckpointError
from pipeline.simulator import Simulator

API = "https://api.leadmagic.io/v1/people/b2b-profile"


def result(key: str, status: str = "found") -> Result:
    return Result(key, key.split("\t")[0], None, status, "slug", 10, "ok", 1)


def test_plan_skips_known_final_results_and_keeps_first_rows(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "c.sqlite", API, "job-a")
    checkpoint.add_keys(["a\t", "b\t", "c\t"], [0, 1, 2])
    checkpoint.add_keys(["a\t", "d\t"], [9, 10])  # a repeats later: its first row stays 0
    checkpoint.record([result("a\t"), result("b\t", "failed"), result("c\t", "rejected")])
    assert checkpoint.plan(Freshness()) == 2  # a (found) and c (rejected) are known
    assert list(checkpoint.iter_pending()) == [["b\t", "d\t"]]
    known = checkpoint.results_for(["a\t"]).row(0, named=True)
    assert (known["first_row"], known["paid_by_job"]) == (0, True)
    assert checkpoint.plan(Freshness(retry_failed=True)) == 1
    assert checkpoint.plan(Freshness(refresh=True)) == 0


def test_a_failure_never_overwrites_a_stored_answer(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "c.sqlite", API, "job-a")
    checkpoint.add_keys(["a\t"], [0])
    checkpoint.record([result("a\t", "found")])
    checkpoint.record([result("a\t", "failed")])
    assert checkpoint.results_for(["a\t"])["stored_status"].to_list() == ["found"]


def test_another_api_is_refused(tmp_path: Path) -> None:
    Checkpoint(tmp_path / "c.sqlite", API, "job").close()
    with pytest.raises(CheckpointError, match=r"holds results from https://api\.leadmagic\.io"):
        Checkpoint(tmp_path / "c.sqlite", "simulator:/v1/people/b2b-profile", "job")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Checkpoint(tmp_path / "c.sqlite", API, "job").close()
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(CheckpointError, match="schema version 99 is newer"):
        Checkpoint(tmp_path / "c.sqlite", API, "job")


def test_the_api_key_is_never_stored(
    simulator: tuple[Simulator, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = simulator
    monkeypatch.setenv("LEADMAGIC_API_KEY", "test-key-0123456789abcdef")
    output = tmp_path / "out.csv"
    assert run_cli("run", SAMPLE_CSV, "-o", output, "--base-url", url, "--rate", 500) == 0
    for path in tmp_path.glob("out.csv.checkpoint.sqlite*"):
        assert b"test-key-0123456789abcdef" not in path.read_bytes()


@pytest.mark.parametrize(
    "content", [b"id,email\n1,a@b.com\n", b"", b"SQLite format 3\x00" + b"\x00" * 100]
)
def test_a_file_that_is_not_our_checkpoint_exits_2_untouched(
    simulator: tuple[Simulator, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
) -> None:
    sim, url = simulator
    monkeypatch.setenv("LEADMAGIC_API_KEY", "test-key-0123456789abcdef")
    precious = tmp_path / "precious.db"
    precious.write_bytes(content)
    code = run_cli(
        "run", SAMPLE_CSV, "-o", tmp_path / "out.csv", "--base-url", url, "--checkpoint", precious
    )
    assert code == 2
    assert "b2b-enrich checkpoint" in capsys.readouterr().err
    assert precious.read_bytes() == content
    assert sim.stats.requests == 0


def test_a_foreign_sqlite_database_exits_2_untouched(
    simulator: tuple[Simulator, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = simulator
    monkeypatch.setenv("LEADMAGIC_API_KEY", "test-key-0123456789abcdef")
    precious = tmp_path / "crm.db"
    with sqlite3.connect(precious) as db:
        db.execute("CREATE TABLE contacts (email TEXT)")
    before = precious.read_bytes()
    code = run_cli(
        "run", SAMPLE_CSV, "-o", tmp_path / "out.csv", "--base-url", url, "--checkpoint", precious
    )
    assert code == 2
    assert precious.read_bytes() == before
