"""Input file -> its columns, its email columns, and a stream of record batches.

Memory follows the batch size, never the file size: CSV is parsed block by
block with every value kept as the exact text of the file, Parquet row group
by row group with its own dtypes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import InputError

WORK_EMAIL_HEADERS = (
    "email",
    "work email",
    "work_email",
    "email address",
    "e-mail",
    "e-mail address",
    "business email",
)
PERSONAL_EMAIL_HEADERS = ("personal email", "personal_email", "private email", "home email")

CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Source:
    """An input file that was opened, checked, and whose email columns are known."""

    path: Path
    format: str  # "csv" or "parquet"
    columns: tuple[str, ...]
    work_column: str | None
    personal_column: str | None


def input_format(path: Path) -> str:
    """The format of an input or output path, from its extension."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise InputError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def open_source(path: Path, work_column: str | None, personal_column: str | None) -> Source:
    """Check that `path` is a readable input file and find its email columns."""
    check_readable(path)
    fmt = input_format(path)
    columns = read_columns(path, fmt)
    work = choose_column(columns, work_column, WORK_EMAIL_HEADERS, "work email", path)
    personal = choose_column(
        columns, personal_column, PERSONAL_EMAIL_HEADERS, "personal email", path
    )
    if work is None and personal is None:
        raise InputError(
            f"{path}: no email column found among {list(columns)}; "
            "name one with --work-email-column NAME (or --personal-email-column NAME)"
        )
    if work is not None and work == personal:
        raise InputError(f"{path}: column {work!r} cannot be both the work and personal email")
    return Source(path, fmt, columns, work, personal)


def check_readable(path: Path) -> None:
    """Raise InputError unless `path` is a non-empty regular file we may read."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


def read_columns(path: Path, fmt: str) -> tuple[str, ...]:
    """The column names of the file, without reading its rows."""
    try:
        if fmt == "parquet":
            return tuple(pq.read_schema(path).names)
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16))
        return tuple(reader.schema.names)
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(f"{path}: cannot be read as {fmt}: {first_line(error)}") from None


def choose_column(
    columns: tuple[str, ...],
    requested: str | None,
    known_headers: tuple[str, ...],
    role: str,
    path: Path,
) -> str | None:
    """The column for one email role: the one asked for, or the one detected."""
    flag = "--" + role.replace(" ", "-") + "-column"
    if requested is not None:
        if requested not in columns:
            raise InputError(f"{path}: no column {requested!r} ({flag}); columns: {list(columns)}")
        return requested
    candidates = [name for name in columns if name.strip().lower() in known_headers]
    if len(candidates) > 1:
        raise InputError(
            f"{path}: several possible {role} columns {candidates}; choose one with {flag} NAME"
        )
    return candidates[0] if candidates else None


def iter_batches(source: Source, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in order, as record batches of about `batch_rows` rows."""
    try:
        if source.format == "parquet":
            yield from pq.ParquetFile(source.path).iter_batches(batch_size=batch_rows)
        else:
            yield from iter_csv(source)
    except pa.ArrowInvalid as error:
        raise InputError(f"{source.path}: {first_line(error)}") from None


def iter_csv(source: Source) -> Iterator[pa.RecordBatch]:
    """CSV rows with every column read as text, so values survive byte for byte."""
    reader = pacsv.open_csv(
        source.path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in source.columns},
            strings_can_be_null=True,
            null_values=[""],
        ),
    )
    yield from reader


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-line error reports."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
