"""Real CRM exports in, clean files out: formats, encodings, email cells, bad input."""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import enrich, run_cli
from pipeline.simulator import Simulator, profile_for

pytestmark = pytest.mark.usefixtures("api_env")
DATA = Path(__file__).parent / "data"
ALEX, ZOE = "alex.rivera@acme.com", "zoe.muller@globex.io"


def status_of(email: str) -> str:
    return "found" if profile_for(email, 0.5) else "not_found"


def read_text(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = io.StringIO(data.decode("utf-8"), newline="")
    return list(csv.DictReader(text, delimiter=delimiter))


@pytest.mark.parametrize(
    ("name", "email_column"),
    [
        ("hubspot.csv", "Email Address"),
        ("salesforce.csv", "Email"),
        ("pipedrive.csv", "Person - Email - Work"),
        ("outlook.csv", "E-mail Address"),
        ("google.csv", "E-mail 1 - Value"),
        ("apollo.csv", "Email"),
    ],
)
def test_crm_exports_are_detected_and_enriched(
    simulator: tuple[Simulator, str], tmp_path: Path, name: str, email_column: str
) -> None:
    _, url = simulator
    output = tmp_path / "out.csv"
    assert enrich(url, DATA / name, output) == 0
    source, result = read_text(DATA / name), read_text(output)
    assert [{k: r[k] for k in source[0]} for r in result] == source
    assert [r["lookup_status"] for r in result] == [
        status_of(ALEX),
        status_of(ZOE),
        "no_email",
    ]
    assert [r[email_column] for r in result] == [ALEX, ZOE, ""]


@pytest.mark.parametrize(
    "name",
    [
        "excel-semicolon.csv",
        "excel-bom.csv",
        "excel-unicode.txt",
        "legacy-cp1252.csv",
        "pipes.txt",
        "contacts.tsv",
        "contacts.csv.gz",
    ],
)
def test_delimiters_encodings_and_gzip_keep_every_value(
    simulator: tuple[Simulator, str], tmp_path: Path, name: str
) -> None:
    _, url = simulator
    output = tmp_path / "out.csv"
    assert enrich(url, DATA / name, output) == 0
    result = read_text(output)
    assert [r["Name"] for r in result] == ["Alex", "Zoë", "Li"]
    assert {r["Notes"] for r in result} == {"café; 10% off | vip"}
    assert [r["lookup_status"] for r in result] == [status_of(ALEX), status_of(ZOE), "no_email"]
    assert output.read_bytes()[:4] == b"Name"  # UTF-8, no BOM


def test_cp1252_fallback_warns_once(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = simulator
    assert enrich(url, DATA / "legacy-cp1252.csv", tmp_path / "o.csv") == 0
    assert capsys.readouterr().err.count("is not UTF-8; reading it as cp1252") == 1


@pytest.mark.parametrize(
    ("output_name", "extra", "delimiter"),
    [
        ("out.tsv", (), "\t"),
        ("out.csv.gz", (), ","),
        ("out.tsv.gz", (), "\t"),
        ("out.data", ("--output-format", "tsv"), "\t"),
    ],
)
def test_output_format_follows_extension_or_flag(
    simulator: tuple[Simulator, str],
    tmp_path: Path,
    output_name: str,
    extra: tuple[str, ...],
    delimiter: str,
) -> None:
    _, url = simulator
    output = tmp_path / output_name
    assert enrich(url, DATA / "hubspot.csv", output, *extra) == 0
    result = read_text(output, delimiter)
    assert [r["Company"] for r in result] == ["Acme, Inc."] * 3
    assert result[2]["lookup_status"] == "no_email"


def test_parquet_output_from_csv_via_flag(simulator: tuple[Simulator, str], tmp_path: Path) -> None:
    _, url = simulator
    output = tmp_path / "out.bin"
    assert enrich(url, DATA / "hubspot.csv", output, "--output-format", "parquet") == 0
    assert pl.read_parquet(output)["Email Address"].to_list() == [ALEX, ZOE, None]


def test_email_cells_as_exports_write_them(
    simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    sim, url = simulator
    output = tmp_path / "out.csv"
    assert enrich(url, DATA / "email-cells.csv", output) == 0
    result = read_text(output)
    assert [r["lookup_status"] for r in result] == [
        status_of(ALEX),
        status_of(ZOE),
        status_of("li.wang@initech.net"),
        status_of(ALEX),
        status_of("user@bücher.de"),
        "invalid_email",
    ]
    assert set(sim.stats.answered) == {ALEX, ZOE, "li.wang@initech.net", "user@bücher.de"}
    assert result[0]["Email"] == "Alex Rivera <Alex.Rivera@ACME.com>"  # the cell is untouched


def test_existing_output_column_needs_prefix_or_overwrite(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    source = DATA / "has-profile-url.csv"
    assert enrich(url, source, tmp_path / "a.csv") == 2
    assert "--prefix" in capsys.readouterr().err and sim.stats.requests == 0
    assert enrich(url, source, tmp_path / "b.csv", "--prefix", "lm_") == 0
    (row,) = read_text(tmp_path / "b.csv")
    assert row["profile_url"] == "keep-me"
    assert row["lm_lookup_status"] == status_of(ALEX)
    assert enrich(url, source, tmp_path / "c.csv", "--overwrite-columns") == 0
    (row,) = read_text(tmp_path / "c.csv")
    assert row["profile_url"] == (profile_for(ALEX, 0.5) or "")
    assert list(row) == [
        "Email",
        "profile_url",
        "credits_consumed",
        "lookup_status",
        "lookup_message",
    ]


def test_ambiguous_columns_exit_2_listing_candidates(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = simulator
    assert enrich(url, DATA / "ambiguous.csv", tmp_path / "o.csv") == 2
    assert "several possible work email columns ['Email', 'Work Email']; choose one with " in (
        capsys.readouterr().err
    )
    assert (
        enrich(url, DATA / "ambiguous.csv", tmp_path / "o.csv", "--work-email-column", "Email") == 0
    )


def bad_input_cases(tmp_path: Path) -> dict[str, tuple[list[object], str]]:
    out = tmp_path / "out.csv"
    return {
        "missing": ([tmp_path / "nope.csv", "-o", out], "nope.csv: no such file"),
        "directory": ([tmp_path, "-o", out], "is a directory, not a file"),
        "empty": ([DATA / "empty.csv", "-o", out], "empty.csv: the file is empty"),
        "corrupt parquet": ([DATA / "corrupt.parquet", "-o", out], "cannot be read as parquet"),
        "binary": ([DATA / "binary.csv", "-o", out], "looks like a binary file"),
        "ragged": ([DATA / "ragged.csv", "-o", out], "wrong number of fields at line 4"),
        "missing folder": (
            [DATA / "hubspot.csv", "-o", tmp_path / "no" / "o.csv"],
            "does not exist",
        ),
        "output is input": (
            [DATA / "hubspot.csv", "-o", DATA / "hubspot.csv"],
            "is the input file",
        ),
        "bad type": ([DATA / "hubspot.csv", "-o", tmp_path / "o.xlsx"], "unsupported file type"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "directory",
        "empty",
        "corrupt parquet",
        "binary",
        "ragged",
        "missing folder",
        "output is input",
        "bad type",
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_lookup(
    simulator: tuple[Simulator, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    sim, url = simulator
    arguments, message = bad_input_cases(tmp_path)[case]
    before = {p: p.read_bytes() for p in DATA.iterdir()}
    assert run_cli("run", *arguments, "--base-url", url, "--checkpoint", tmp_path / "c.db") == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1 and error.startswith("b2b-enrich: error: ")
    assert sim.stats.requests == 0
    assert not (tmp_path / "c.db").exists() or case == "ragged"
    assert {p: p.read_bytes() for p in DATA.iterdir()} == before


def test_unreadable_file_exits_2(
    simulator: tuple[Simulator, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = simulator
    source = tmp_path / "locked.csv"
    source.write_text("Email\na@b.com\n", encoding="utf-8")
    source.chmod(0)
    real_access = os.access
    # Root reads anything; emulate an unprivileged user for this one path.
    monkeypatch.setattr(
        os, "access", lambda p, m: False if Path(p) == source else real_access(p, m)
    )
    assert enrich(url, source, tmp_path / "o.csv") == 2
    assert "locked.csv: permission denied" in capsys.readouterr().err


cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(cell_text, min_size=1, max_size=12))
def test_any_value_comes_back_unchanged_in_the_same_order(
    simulator: tuple[Simulator, str], tmp_path_factory: pytest.TempPathFactory, values: list[str]
) -> None:
    _, url = simulator
    folder = tmp_path_factory.mktemp("prop")
    source = folder / "in.csv"
    frame = pl.DataFrame(
        {"row": [str(i) for i in range(len(values))], "Notes": values, "Email": values}
    )
    frame.write_csv(source)
    output = folder / "out.csv"
    assert enrich(url, source, output) == 0
    before = pl.read_csv(source, infer_schema=False)
    after = pl.read_csv(output, infer_schema=False)
    assert after.select(before.columns).equals(before)
    assert after["lookup_status"].null_count() == 0


def test_quoted_multiline_values_survive(simulator: tuple[Simulator, str], tmp_path: Path) -> None:
    _, url = simulator
    source = tmp_path / "in.csv"
    body = 'Email,Notes\r\nalex.rivera@acme.com,"line one\r\nline ""two"", three"\r\n'
    source.write_text(body, encoding="utf-8", newline="")
    output = tmp_path / "out.csv"
    assert enrich(url, source, output) == 0
    (row,) = list(csv.DictReader(io.StringIO(output.read_bytes().decode("utf-8"), newline="")))
    assert row["Notes"] == 'line one\r\nline "two", three'


def test_a_bad_row_deep_in_the_file_leaves_the_checkpoint_untouched(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, url = simulator
    good = tmp_path / "good.csv"
    good.write_text("Email,Name\nalex.rivera@acme.com,Alex\n", encoding="utf-8")
    shared = tmp_path / "cache.sqlite"
    assert enrich(url, good, tmp_path / "good.out.csv", "--checkpoint", shared) == 0
    before = shared.read_bytes()
    lines = [f"user{i}@corp.com,Person {i}" for i in range(20000)]
    big = tmp_path / "big.csv"
    big.write_text("Email,Name\n" + "\n".join(lines) + "\nlate@corp.com,Late,extra\n", "utf-8")
    requests = sim.stats.requests
    for checkpoint in (shared, tmp_path / "new.sqlite"):
        capsys.readouterr()
        assert enrich(url, big, tmp_path / "big.out.csv", "--checkpoint", checkpoint) == 2
        error = capsys.readouterr().err
        assert "a row has the wrong number of fields at line 20002" in error
    assert sim.stats.requests == requests
    assert shared.read_bytes() == before
    assert not list(tmp_path.glob("new.sqlite*"))


def test_delimiter_and_encoding_can_be_forced(
    simulator: tuple[Simulator, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = simulator
    output = tmp_path / "o.csv"
    source = DATA / "legacy-cp1252.csv"
    assert enrich(url, source, output, "--encoding", "cp1252", "--delimiter", "comma") == 0
    assert "cp1252" not in capsys.readouterr().err  # no fallback warning when told
    assert [r["Name"] for r in read_text(output)] == ["Alex", "Zoë", "Li"]
    semicolons = DATA / "excel-semicolon.csv"
    assert enrich(url, semicolons, tmp_path / "p.csv", "--delimiter", ";") == 0
    assert enrich(url, semicolons, tmp_path / "q.csv", "--delimiter", "tab") == 2
    assert "no email column found among ['Name;Email;Notes']" in capsys.readouterr().err
