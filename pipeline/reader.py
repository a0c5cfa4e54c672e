"""Input file -> its format, its columns, its email columns, and a stream of record batches.

Memory follows the batch size, never the file size: delimited text (CSV, TSV,
TXT, gzipped or not, in UTF-8, UTF-16 or cp1252) is parsed block by block with
every value kept as the exact text of the file; Parquet row group by row group.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import InputError

log = logging.getLogger("b2b_enrich")

# Header names, compared case-insensitively after trimming. Sources: HubSpot,
# Salesforce, Pipedrive, Outlook, Google Contacts and Apollo exports.
WORK_EMAIL_HEADERS = (
    "email",
    "work email",
    "work_email",
    "email address",
    "e-mail",
    "e-mail address",
    "business email",
    "person - email",
    "person - email - work",
    "e-mail 1 - value",
)
PERSONAL_EMAIL_HEADERS = (
    "personal email",
    "personal_email",
    "private email",
    "home email",
    "person - email - home",
    "e-mail 2 address",
)

# The delimiter each extension is written with; on input only .tsv is taken at
# its word: Excel writes ";" into .csv files in many locales, so those are sniffed.
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
DELIMITERS = (",", ";", "\t", "|")
CSV_BLOCK_BYTES = 4 << 20
SAMPLE_BYTES = 64 << 10


@dataclass(frozen=True)
class Source:
    """An input file that was opened, checked, and whose email columns are known."""

    path: Path
    format: str  # "csv" (any delimited text) or "parquet"
    columns: tuple[str, ...]
    work_column: str | None
    personal_column: str | None
    delimiter: str = ","
    encoding: str = "utf-8"
    gzipped: bool = False


@dataclass(frozen=True)
class TextLayout:
    """How a delimited text file is written."""

    delimiter: str
    encoding: str
    gzipped: bool


def file_kind(path: Path) -> tuple[str, bool, str | None]:
    """(format, gzipped, delimiter implied by the extension) of an input or output path."""
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    suffix = suffixes[-2] if gzipped and len(suffixes) == 2 else (suffixes[-1] if suffixes else "")
    if suffix == ".parquet" and not gzipped:
        return "parquet", False, None
    if suffix in TEXT_SUFFIXES:
        return "csv", gzipped, TEXT_SUFFIXES[suffix]
    raise InputError(
        f"{path}: unsupported file type; use .csv, .tsv, .txt (optionally .gz) or .parquet"
    )


def open_source(
    path: Path,
    work_column: str | None,
    personal_column: str | None,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> Source:
    """Check that `path` is a readable input file and find its email columns."""
    check_readable(path)
    fmt, gzipped, _ = file_kind(path)
    layout = TextLayout(",", "utf-8", gzipped)
    if fmt == "csv":
        tsv = "\t" if ".tsv" in (s.lower() for s in path.suffixes) else None
        layout = sniff_layout(path, gzipped, delimiter or tsv, encoding)
    columns = read_columns(path, fmt, layout)
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
    return Source(
        path, fmt, columns, work, personal, layout.delimiter, layout.encoding, layout.gzipped
    )


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


def open_bytes(path: Path, gzipped: bool) -> BinaryIO:
    try:
        return gzip.open(path, "rb") if gzipped else path.open("rb")  # type: ignore[return-value]
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None


def read_sample(path: Path, gzipped: bool) -> bytes:
    try:
        with open_bytes(path, gzipped) as handle:
            return handle.read(SAMPLE_BYTES)
    except (gzip.BadGzipFile, EOFError, OSError) as error:
        raise InputError(f"{path}: cannot be read as gzip: {first_line(error)}") from None


def sniff_layout(
    path: Path, gzipped: bool, delimiter: str | None, encoding: str | None
) -> TextLayout:
    """The encoding and delimiter of a text file, from its first 64 KiB."""
    sample = read_sample(path, gzipped)
    if not sample.strip():
        raise InputError(f"{path}: the file is empty")
    encoding = encoding or sniff_encoding(path, sample)
    try:
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    except LookupError:
        raise InputError(f"{path}: unknown encoding {encoding!r} (--encoding)") from None
    return TextLayout(delimiter or sniff_delimiter(text), encoding, gzipped)


def sniff_encoding(path: Path, sample: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16 with a BOM (Excel's "Unicode text"), else cp1252."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample:
        raise InputError(f"{path}: looks like a binary file, not delimited text or Parquet")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        log.warning("%s is not UTF-8; reading it as cp1252 (use --encoding to choose)", path)
        return "cp1252"
    return "utf-8"


def sniff_delimiter(text: str) -> str:
    """The candidate delimiter seen most often in the header line, outside quotes."""
    header = first_record(text)
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def first_record(text: str) -> str:
    """The header line (a quoted header may span lines)."""
    quoted = False
    for index, char in enumerate(text.lstrip("\ufeff")):
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            return text.lstrip("\ufeff")[:index]
    return text


def read_columns(path: Path, fmt: str, layout: TextLayout) -> tuple[str, ...]:
    """The column names of the file, without reading its rows."""
    try:
        if fmt == "parquet":
            return tuple(pq.read_schema(path).names)
        with csv_reader(path, layout, column_types=None, block_bytes=1 << 16) as reader:
            names = tuple(reader.schema.names)
    except pa.ArrowInvalid as error:
        if fmt == "csv":
            raise InputError(describe_parse_error(path, layout, error)) from None
        raise InputError(f"{path}: cannot be read as {fmt}: {first_line(error)}") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read as {fmt}: {first_line(error)}") from None
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InputError(f"{path}: duplicate column names {duplicated}; rename them first")
    return names


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
            f"{path}: several possible {role} columns {candidates}; choose one with {flag} NAME "
            f"(columns: {list(columns)})"
        )
    return candidates[0] if candidates else None


def csv_reader(
    path: Path, layout: TextLayout, column_types: dict[str, pa.DataType] | None, block_bytes: int
) -> pacsv.CSVStreamingReader:
    stream = pa.input_stream(path, compression="gzip" if layout.gzipped else None)
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=block_bytes, encoding=arrow_encoding(layout)),
        parse_options=pacsv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
        ),
    )


def arrow_encoding(layout: TextLayout) -> str:
    """UTF-8 is parsed natively (BOM skipped); anything else is transcoded by Python's codecs."""
    return "utf8" if codecs.lookup(layout.encoding).name == "utf-8" else layout.encoding


def iter_batches(source: Source, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows in order, as record batches of about `batch_rows` rows."""
    try:
        if source.format == "parquet":
            yield from pq.ParquetFile(source.path).iter_batches(batch_size=batch_rows)
            return
        layout = TextLayout(source.delimiter, source.encoding, source.gzipped)
        types = dict.fromkeys(source.columns, pa.string())
        with csv_reader(source.path, layout, types, CSV_BLOCK_BYTES) as reader:
            yield from reader
    except pa.ArrowInvalid as error:
        layout = TextLayout(source.delimiter, source.encoding, source.gzipped)
        raise InputError(describe_parse_error(source.path, layout, error)) from None


def describe_parse_error(path: Path, layout: TextLayout, error: Exception) -> str:
    """One line naming what is wrong, and where, for a file pyarrow could not parse."""
    text = first_line(error)
    if "Expected" in text and "columns" in text:
        line = ragged_line(path, layout)
        where = f" at line {line}" if line else ""
        return f"{path}: a row has the wrong number of fields{where}"
    if "UTF8" in text or "utf8" in text.lower():
        return (
            f"{path}: not valid {layout.encoding} text past its start; "
            "name the file's encoding with --encoding (e.g. --encoding cp1252)"
        )
    return f"{path}: {text}"


def ragged_line(path: Path, layout: TextLayout) -> int | None:
    """The line of the first record whose field count differs from the header's (slow path)."""
    with (
        open_bytes(path, layout.gzipped) as raw,
        io.TextIOWrapper(raw, encoding=layout.encoding, newline="") as text,
    ):
        reader = csv.reader(text, delimiter=layout.delimiter)
        width = len(next(reader, []))
        for record in reader:
            if len(record) != width:
                return reader.line_num
    return None


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, for one-line error reports."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
