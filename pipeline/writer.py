"""Input rows + known results -> the output file, written under a temporary name.

Every input row comes out once, in order, with its original columns untouched
(Parquet keeps its dtypes) and four columns joined on. The output path never
holds a half-written file: the file is renamed into place when complete.
"""

from __future__ import annotations

import glob
import gzip
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.checkpoint import Checkpoint
from pipeline.emails import lookup_keys
from pipeline.errors import InputError
from pipeline.reader import Source, file_kind, iter_batches

OUTPUT_COLUMNS = ("profile_url", "credits_consumed", "lookup_status", "lookup_message")
STATUSES = ("found", "not_found", "invalid_email", "no_email", "failed", "pending")

RETRYABLE = "__retryable"
NO_EMAIL_MESSAGE = "no email address in this row"
INVALID_EMAIL_MESSAGE = "not a valid email address; not sent"
PENDING_MESSAGE = "not looked up yet; run the same command again to resume"


@dataclass
class RowCounts:
    """Tallies of the rows written: what the summary reports per row."""

    rows: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    credits: int = 0
    retryable_failed: int = 0


def batch_lookup_keys(batch: pa.RecordBatch, source: Source) -> pl.DataFrame:
    """The lookup key and email state of each row of one input batch."""
    work = column_series(batch, source.work_column)
    personal = column_series(batch, source.personal_column)
    return lookup_keys(work, personal, batch.num_rows)


def column_series(batch: pa.RecordBatch, name: str | None) -> pl.Series | None:
    return None if name is None else pl.Series(name, batch.column(name))


def enrichment_columns(
    keys: pl.DataFrame, known: pl.DataFrame, first_row: int, prefix: str
) -> pl.DataFrame:
    """The four output columns for one batch, from its keys and the checkpoint's view.

    A fifth, RETRYABLE, marks failures the next run tries again; it is not written.
    """
    rows = keys.with_row_index("row", offset=first_row).with_columns(pl.col("row").cast(pl.Int64))
    joined = rows.join(known, on="lookup_key", how="left", maintain_order="left")
    stored = pl.col("stored_status")
    status = (
        pl.when(pl.col("email_state") != "lookup")
        .then(pl.col("email_state"))
        .when((pl.col("todo") == 1) | stored.is_null())
        .then(pl.lit("pending"))
        .when(stored == "rejected")
        .then(pl.lit("failed"))
        .otherwise(stored)
    )
    joined = joined.with_columns(lookup_status=status)
    found = pl.col("lookup_status") == "found"
    first_paid = found & pl.col("paid_by_job") & (pl.col("row") == pl.col("first_row"))
    message = (
        pl.when(pl.col("lookup_status") == "no_email")
        .then(pl.lit(NO_EMAIL_MESSAGE))
        .when(pl.col("lookup_status") == "invalid_email")
        .then(pl.lit(INVALID_EMAIL_MESSAGE))
        .when(pl.col("lookup_status") == "pending")
        .then(pl.lit(PENDING_MESSAGE))
        .otherwise(pl.col("stored_message"))
    )
    return joined.select(
        pl.when(found).then(pl.col("profile_url")).alias(prefix + "profile_url"),
        pl.when(first_paid)
        .then(pl.col("stored_credits"))
        .otherwise(0)
        .cast(pl.Int64)
        .alias(prefix + "credits_consumed"),
        pl.col("lookup_status").alias(prefix + "lookup_status"),
        message.alias(prefix + "lookup_message"),
        (stored == "failed").fill_null(False).alias(RETRYABLE),
    )


@dataclass(frozen=True)
class OutputKind:
    """What the output file is: parquet, or delimited text (maybe gzipped)."""

    format: str  # "csv" or "parquet"
    delimiter: str = ","
    gzipped: bool = False


def output_kind(path: Path, override: str | None = None) -> OutputKind:
    """The output's format from --output-format, else from the path's extension."""
    gzipped = path.suffix.lower() == ".gz"
    if override == "parquet":
        return OutputKind("parquet")
    if override in ("csv", "tsv"):
        return OutputKind("csv", "\t" if override == "tsv" else ",", gzipped)
    if override is not None:
        raise InputError(f"--output-format {override!r}: use csv, tsv or parquet")
    fmt, gzipped, delimiter = file_kind(path)
    if fmt == "parquet":
        return OutputKind("parquet")
    return OutputKind("csv", delimiter or ",", gzipped)


def write_output(
    source: Source,
    output: Path,
    kind: OutputKind,
    checkpoint: Checkpoint,
    batch_rows: int,
    prefix: str = "",
    replace_columns: bool = False,
) -> RowCounts:
    """Join what the checkpoint knows onto every input row and write the output file."""
    counts = RowCounts()
    with atomic_path(output) as temporary:
        sink = (
            CsvSink(temporary, kind.delimiter, kind.gzipped)
            if kind.format == "csv"
            else ParquetSink(temporary)
        )
        try:
            for batch in iter_batches(source, batch_rows):
                if replace_columns:
                    batch = without_output_columns(batch, prefix)
                keys = batch_lookup_keys(batch, source)
                distinct = keys["lookup_key"].drop_nulls().unique().to_list()
                added = enrichment_columns(
                    keys, checkpoint.results_for(distinct), counts.rows, prefix
                )
                tally(counts, added, prefix, batch.num_rows)
                sink.write(batch, added.drop(RETRYABLE))
            if counts.rows == 0:
                sink.write_empty(source, prefix, replace_columns)
        finally:
            sink.close()
    return counts


def tally(counts: RowCounts, added: pl.DataFrame, prefix: str, rows: int) -> None:
    counts.rows += rows
    counts.credits += int(added[prefix + "credits_consumed"].sum())
    counts.retryable_failed += int(added[RETRYABLE].sum())
    for status, number in added[prefix + "lookup_status"].value_counts().iter_rows():
        counts.statuses[status] += number


def without_output_columns(batch: pa.RecordBatch, prefix: str) -> pa.RecordBatch:
    """--overwrite-columns: the input's own copies of the output columns are dropped."""
    names = {prefix + name for name in OUTPUT_COLUMNS}
    keep = [i for i, name in enumerate(batch.schema.names) if name not in names]
    return batch.select(keep)


def output_names(source: Source, prefix: str, replace_columns: bool) -> list[str]:
    added = [prefix + name for name in OUTPUT_COLUMNS]
    kept = [c for c in source.columns if not (replace_columns and c in added)]
    return kept + added


def open_output(path: Path, gzipped: bool) -> IO[bytes]:
    """The sink's file; its close() closes it, as it lives across the whole batch loop."""
    if gzipped:
        return gzip.open(path, "wb")  # type: ignore[return-value]
    return path.open("wb")


class CsvSink:
    """UTF-8 delimited text (gzipped if asked), header once, quoting only where needed."""

    def __init__(self, path: Path, delimiter: str = ",", gzipped: bool = False) -> None:
        self.handle = open_output(path, gzipped)
        self.delimiter = delimiter
        self.header_written = False

    def write(self, batch: pa.RecordBatch, added: pl.DataFrame) -> None:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        frame.hstack(added, in_place=True)
        frame.write_csv(
            self.handle, include_header=not self.header_written, separator=self.delimiter
        )
        self.header_written = True

    def write_empty(self, source: Source, prefix: str, replace_columns: bool) -> None:
        names = output_names(source, prefix, replace_columns)
        empty = pl.DataFrame(schema=dict.fromkeys(names, pl.String))
        empty.write_csv(self.handle, separator=self.delimiter)

    def close(self) -> None:
        self.handle.close()


class ParquetSink:
    """Parquet with the input's own schema plus the four output columns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def write(self, batch: pa.RecordBatch, added: pl.DataFrame) -> None:
        table = pa.Table.from_batches([batch])
        for column in added.columns:
            table = table.append_column(column, added[column].to_arrow())
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def write_empty(self, source: Source, prefix: str, replace_columns: bool) -> None:
        schema = pq.read_schema(source.path) if source.format == "parquet" else None
        kept = output_names(source, prefix, replace_columns)[: -len(OUTPUT_COLUMNS)]
        if schema is not None:
            fields = [schema.field(name) for name in kept]
        else:
            fields = [pa.field(name, pa.string()) for name in kept]
        fields += [
            pa.field(prefix + "profile_url", pa.large_string()),
            pa.field(prefix + "credits_consumed", pa.int64()),
            pa.field(prefix + "lookup_status", pa.large_string()),
            pa.field(prefix + "lookup_message", pa.large_string()),
        ]
        self.writer = pq.ParquetWriter(self.path, pa.schema(fields))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it only if the block succeeds."""
    remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Half-written files of runs that were killed (kill -9 skips their clean-up)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = stale.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not process_alive(int(pid)):
            stale.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
