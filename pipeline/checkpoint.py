"""The SQLite checkpoint: every lookup result ever paid for, and this job's work list.

`lookups` is durable and may be shared by many jobs (a team's cache); the
`job_keys` table is a per-run TEMP table: this job's unique lookup keys, the
row each first appears on, and whether it still needs a request. Resume is
nothing more than "a key already in `lookups`, fresh and final, is not asked".
The API key is never stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.errors import CheckpointError

SCHEMA_VERSION = 1
APPLICATION = "b2b-enrich"
SQLITE_MAGIC = b"SQLite format 3\x00"
DAY_S = 86400.0

# Statuses stored in `lookups`. "failed" is retried on the next run;
# "rejected" (HTTP 400) only with --retry-failed.
FINAL_STATUSES = ("found", "not_found")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lookups (
    lookup_key     TEXT PRIMARY KEY,
    work_email     TEXT,
    personal_email TEXT,
    status         TEXT NOT NULL,      -- found, not_found, failed, rejected
    profile_url    TEXT,
    credits        INTEGER NOT NULL DEFAULT 0,
    message        TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    job_id         TEXT NOT NULL,      -- the job whose request produced this result
    fetched_at     REAL NOT NULL       -- unix time
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    job_id       TEXT PRIMARY KEY,
    input_path   TEXT NOT NULL,
    output_path  TEXT NOT NULL,
    first_run_at REAL NOT NULL,
    last_run_at  REAL NOT NULL,
    runs         INTEGER NOT NULL DEFAULT 0,
    api_calls    INTEGER NOT NULL DEFAULT 0,
    credits      INTEGER NOT NULL DEFAULT 0,
    lookups      INTEGER NOT NULL DEFAULT 0,   -- unique lookups, as of the last run
    pending      INTEGER NOT NULL DEFAULT 0,   -- still to request after the last run
    status       TEXT NOT NULL DEFAULT 'incomplete'
);
"""

JOB_KEYS = """
CREATE TEMP TABLE job_keys (
    lookup_key TEXT PRIMARY KEY,
    first_row  INTEGER NOT NULL,
    todo       INTEGER NOT NULL DEFAULT 1   -- needed a request when this run planned
);
"""


@dataclass(frozen=True)
class Result:
    """A lookup's result as stored: what the API said, or why it failed."""

    lookup_key: str
    work_email: str | None
    personal_email: str | None
    status: str
    profile_url: str | None
    credits: int
    message: str
    attempts: int


@dataclass(frozen=True)
class Freshness:
    """How long stored results are reused, and what is asked again regardless."""

    max_age_found_days: float = 90.0
    max_age_miss_days: float = 30.0
    refresh: bool = False
    retry_failed: bool = False


class Checkpoint:
    """One open checkpoint file, bound to one API and one job."""

    def __init__(self, path: Path, api_url: str, job_id: str) -> None:
        self.path = path
        self.job_id = job_id
        self.db = connect(path)
        self.ensure_schema(api_url)
        self.db.executescript(JOB_KEYS)
        #: Results stored from this moment on answer this run's pending keys, so
        #: recording a result is one upsert and nothing else.
        self.run_started = time.time()

    def close(self) -> None:
        self.db.close()

    def holds_no_results(self) -> bool:
        return self.db.execute("SELECT NOT EXISTS (SELECT 1 FROM lookups)").fetchone()[0] == 1

    def ensure_schema(self, api_url: str) -> None:
        """Create a new checkpoint, or check that an existing one is ours and for this API."""
        meta = read_meta(self.db, self.path)
        if meta:
            check_meta(meta, self.path, api_url)
        self.db.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives a killed process (not a power cut) without an fsync.
        self.db.execute("PRAGMA synchronous = NORMAL")
        if not meta:
            with self.db:
                self.db.executescript(SCHEMA)
                self.db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("application", APPLICATION),
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("api_url", api_url),
                        ("created_at", str(time.time())),
                    ],
                )

    # -- this job's work list -------------------------------------------------

    def start_job(self, input_path: str, output_path: str) -> None:
        now = time.time()
        with self.db:
            self.db.execute(
                "INSERT INTO jobs (job_id, input_path, output_path, first_run_at, last_run_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET last_run_at = ?",
                (self.job_id, input_path, output_path, now, now, now),
            )

    def add_keys(self, keys: list[str], first_rows: list[int]) -> None:
        """Register a batch's unique keys; the first registration of a key keeps its row."""
        self.db.executemany(
            "INSERT OR IGNORE INTO job_keys (lookup_key, first_row) VALUES (?, ?)",
            zip(keys, first_rows, strict=True),
        )

    def plan(self, freshness: Freshness, now: float | None = None) -> int:
        """Mark which of the job's keys need a request; return how many are known already."""
        now = time.time() if now is None else now
        if freshness.refresh:
            self.db.execute("UPDATE job_keys SET todo = 1")
        else:
            self.db.execute(
                """
                UPDATE job_keys SET todo = NOT EXISTS (
                    SELECT 1 FROM lookups l WHERE l.lookup_key = job_keys.lookup_key AND (
                        (l.status = 'found' AND l.fetched_at >= ?)
                        OR (l.status = 'not_found' AND l.fetched_at >= ?)
                        OR (l.status = 'rejected' AND ?)))
                """,
                (
                    now - freshness.max_age_found_days * DAY_S,
                    now - freshness.max_age_miss_days * DAY_S,
                    not freshness.retry_failed,
                ),
            )
        self.db.commit()
        return self.count_keys(todo=False)

    def count_keys(self, todo: bool | None = None) -> int:
        if todo is None:
            return self.db.execute("SELECT count(*) FROM job_keys").fetchone()[0]
        sql = "SELECT count(*) FROM job_keys WHERE todo = ?"
        return self.db.execute(sql, (int(todo),)).fetchone()[0]

    def count_pending(self) -> int:
        """Keys that needed a request and have no result stored since the run started."""
        sql = (
            "SELECT count(*) FROM job_keys k LEFT JOIN lookups l ON l.lookup_key = k.lookup_key"
            " WHERE k.todo = 1 AND (l.fetched_at IS NULL OR l.fetched_at < ?)"
        )
        return self.db.execute(sql, (self.run_started,)).fetchone()[0]

    def iter_pending(self, chunk: int = 1000) -> Iterator[list[str]]:
        """The keys still to request, in order of first appearance, a chunk at a time."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT rowid, lookup_key FROM job_keys WHERE todo = 1 AND rowid > ?"
                " ORDER BY rowid LIMIT ?",
                (last, chunk),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [key for _, key in rows]

    # -- results --------------------------------------------------------------

    def record(self, results: list[Result]) -> None:
        """Store results durably in one transaction; a failure never hides a final result."""
        if not results:
            return
        now = time.time()
        with self.db:
            self.db.executemany(
                """
                INSERT INTO lookups (lookup_key, work_email, personal_email, status,
                                     profile_url, credits, message, attempts, job_id, fetched_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(lookup_key) DO UPDATE SET
                    status = excluded.status, profile_url = excluded.profile_url,
                    credits = excluded.credits, message = excluded.message,
                    attempts = excluded.attempts, job_id = excluded.job_id,
                    fetched_at = excluded.fetched_at
                WHERE excluded.status IN ('found', 'not_found')
                   OR lookups.status NOT IN ('found', 'not_found')
                """,
                [
                    (
                        r.lookup_key,
                        r.work_email,
                        r.personal_email,
                        r.status,
                        r.profile_url,
                        r.credits,
                        r.message,
                        r.attempts,
                        self.job_id,
                        now,
                    )
                    for r in results
                ],
            )

    def record_run(self, api_calls: int, credits: int) -> None:
        """Add one run's requests and credits to the job's totals, with what is left."""
        pending = self.count_pending()
        with self.db:
            self.db.execute(
                "UPDATE jobs SET runs = runs + 1, api_calls = api_calls + ?,"
                " credits = credits + ?, last_run_at = ?, lookups = ?, pending = ?,"
                " status = ? WHERE job_id = ?",
                (
                    api_calls,
                    credits,
                    time.time(),
                    self.count_keys(),
                    pending,
                    "incomplete" if pending else "complete",
                    self.job_id,
                ),
            )

    def results_for(self, keys: list[str]) -> pl.DataFrame:
        """This job's view of `keys`: first row, whether pending, and the stored result."""
        rows = self.db.execute(
            """
            SELECT k.lookup_key, k.first_row,
                   k.todo = 1 AND (l.fetched_at IS NULL OR l.fetched_at < ?) AS todo,
                   l.status, l.profile_url, l.credits, l.message, l.job_id = ? AS paid_by_job
            FROM job_keys k LEFT JOIN lookups l ON l.lookup_key = k.lookup_key
            WHERE k.lookup_key IN (SELECT value FROM json_each(?))
            """,
            (self.run_started, self.job_id, json.dumps(keys)),
        ).fetchall()
        return pl.DataFrame(
            rows,
            schema={
                "lookup_key": pl.String,
                "first_row": pl.Int64,
                "todo": pl.Int64,
                "stored_status": pl.String,
                "profile_url": pl.String,
                "stored_credits": pl.Int64,
                "stored_message": pl.String,
                "paid_by_job": pl.Boolean,
            },
            orient="row",
        )


def connect(path: Path) -> sqlite3.Connection:
    """Open `path` as SQLite, refusing any existing file that is not a SQLite database."""
    if path.exists():
        if path.is_dir():
            raise CheckpointError(f"{path}: the checkpoint path is a directory")
        with path.open("rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                raise CheckpointError(
                    f"{path}: exists and is not a b2b-enrich checkpoint; "
                    "choose another --checkpoint path (the file was left untouched)"
                )
    elif not path.parent.is_dir():
        raise CheckpointError(f"{path}: the checkpoint's folder does not exist")
    return sqlite3.connect(path, timeout=30)


def read_meta(db: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The checkpoint's meta table; {} for a new, empty database."""
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as error:
        raise CheckpointError(
            f"{path}: not a readable b2b-enrich checkpoint ({error}); left untouched"
        ) from None
    if not tables:
        return {}
    if "meta" not in tables:
        raise CheckpointError(
            f"{path}: is a SQLite database but not a b2b-enrich checkpoint; "
            "choose another --checkpoint path (the file was left untouched)"
        )
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("application") != APPLICATION:
        raise CheckpointError(f"{path}: is not a b2b-enrich checkpoint (left untouched)")
    return meta


def check_meta(meta: dict[str, str], path: Path, api_url: str) -> None:
    """Refuse a checkpoint written by a newer version or filled from another API."""
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema version {version} is newer than this "
            f"b2b-enrich understands ({SCHEMA_VERSION}); upgrade b2b-enrich"
        )
    if version < 1:
        raise CheckpointError(f"{path}: checkpoint has no valid schema version")
    if meta.get("api_url") != api_url:
        raise CheckpointError(
            f"{path}: this checkpoint holds results from {meta.get('api_url')}, "
            f"not {api_url}; use another --checkpoint for this API"
        )


def describe(path: Path) -> dict[str, object]:
    """What a checkpoint holds, for `b2b-enrich status`; opens it read-only."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    connect(path).close()  # refuses files that are not SQLite
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        meta = read_meta(db, path)
        if not meta:
            raise CheckpointError(f"{path}: is an empty database, not a b2b-enrich checkpoint")
        counts = dict(db.execute("SELECT status, count(*) FROM lookups GROUP BY status").fetchall())
        credits = db.execute("SELECT coalesce(sum(credits), 0) FROM lookups").fetchone()[0]
        jobs = [
            dict(zip(JOB_FIELDS, row, strict=True))
            for row in db.execute(f"SELECT {', '.join(JOB_FIELDS)} FROM jobs ORDER BY first_run_at")
        ]
    finally:
        db.close()
    return {
        "checkpoint": str(path),
        "api": meta.get("api_url"),
        "schema_version": int(meta.get("schema_version", "0")),
        "lookups": sum(counts.values()),
        "found": counts.get("found", 0),
        "not_found": counts.get("not_found", 0),
        "failed": counts.get("failed", 0),
        "rejected": counts.get("rejected", 0),
        "pending": sum(int(job["pending"]) for job in jobs),
        "credits_recorded": credits,
        "jobs": jobs,
    }


JOB_FIELDS = (
    "job_id",
    "input_path",
    "output_path",
    "first_run_at",
    "last_run_at",
    "runs",
    "api_calls",
    "credits",
    "lookups",
    "pending",
    "status",
)
