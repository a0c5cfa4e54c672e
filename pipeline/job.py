"""One enrichment job: reader -> checkpoint plan -> pool -> writer -> Summary.

`run` is the one entry point behind both the CLI and the Python API. It
raises the project's exceptions (errors.py) and never prints or exits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.checkpoint import Checkpoint, Freshness
from pipeline.client import fetch_balance, open_session
from pipeline.config import API_KEY_ENV, Config
from pipeline.errors import (
    AuthError,
    BudgetReached,
    InputError,
    Interrupted,
    OutOfCredits,
    StoppedEarly,
)
from pipeline.pool import CREDITS_PER_FOUND, Pool, PoolSettings, PoolStats
from pipeline.reader import Source, iter_batches, open_source
from pipeline.simulator import Simulator, SimulatorSettings
from pipeline.summary import Summary
from pipeline.writer import (
    OUTPUT_COLUMNS,
    RowCounts,
    batch_lookup_keys,
    output_kind,
    write_output,
)

log = logging.getLogger("b2b_enrich")

RESUME_HINT = "run the same command again to resume"
NO_KEY_MESSAGE = (
    f"no API key: set it with `export {API_KEY_ENV}=...` "
    "(or use --simulate to try the built-in simulator)"
)


@dataclass(frozen=True)
class Api:
    """Where requests go, with which key, and the identity the checkpoint records."""

    url: str
    base_url: str
    api_key: str
    identity: str


def run(config: Config, progress: Callable[[PoolStats], object] | None = None) -> Summary:
    """Enrich config.input into config.output; see `run_async`."""
    return asyncio.run(run_async(config, progress))


async def run_async(
    config: Config, progress: Callable[[PoolStats], object] | None = None
) -> Summary:
    """Enrich one file. Returns the Summary; raises InputError, AuthError or StoppedEarly."""
    started = time.monotonic()
    source = check_job(config)
    async with api_for(config) as api:
        path = config.checkpoint_path
        existed = path.exists()
        checkpoint = Checkpoint(path, api.identity, job_id(config))
        try:
            return await enrich_with(config, source, api, checkpoint, started, progress)
        except InputError:
            # Bad input found deep in the file, before any request: a checkpoint
            # this run created holds nothing, so it is removed, not left behind.
            if not existed and checkpoint.holds_no_results():
                checkpoint.close()
                remove_database(path)
            raise
        finally:
            checkpoint.close()


async def enrich_with(
    config: Config,
    source: Source,
    api: Api,
    checkpoint: Checkpoint,
    started: float,
    progress: Callable[[PoolStats], object] | None,
) -> Summary:
    assert config.input is not None and config.output is not None
    register_keys(source, checkpoint, config.batch_rows)
    checkpoint.start_job(str(config.input.resolve()), str(config.output.resolve()))
    cache_hits = checkpoint.plan(freshness_of(config))
    pending = checkpoint.count_keys(todo=True)
    pool = Pool(pool_settings(config, api), checkpoint.record)
    if pending:
        await preflight(config, api, pending)
        with stop_on_signals(pool):
            reporter = asyncio.create_task(report_progress(pool.stats, progress))
            try:
                await pool.run(checkpoint.iter_pending(), pending)
            finally:
                reporter.cancel()
                if progress is not None:
                    progress(pool.stats)  # the final figures, not the last tick's
    stats = pool.stats
    checkpoint.record_run(stats.api_calls, stats.credits)
    if stats.stop_reason == "auth":
        raise AuthError(
            f"the API rejected the key in {API_KEY_ENV} ({stats.stop_message}); "
            "check the key and run again"
        )
    counts = write_output(
        source,
        config.output,
        output_kind(config.output, config.output_format),
        checkpoint,
        config.batch_rows,
        config.prefix,
        config.overwrite_columns,
    )
    summary = summarise(config, counts, stats, checkpoint.count_keys(), cache_hits, started)
    stop = stop_error(stats)
    if stop is not None:
        stop.summary = summary
        raise stop
    return summary


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def summarise(
    config: Config,
    counts: RowCounts,
    stats: PoolStats,
    unique_lookups: int,
    cache_hits: int,
    started: float,
) -> Summary:
    """The run's Summary from the rows written and what the pool did."""
    statuses = counts.statuses
    found = statuses["found"]
    return Summary(
        rows=counts.rows,
        rows_with_email=counts.rows - statuses["no_email"],
        invalid_emails=statuses["invalid_email"],
        no_email=statuses["no_email"],
        unique_lookups=unique_lookups,
        api_calls=stats.api_calls,
        retries=stats.retries,
        throttled=stats.throttled,
        found=found,
        not_found=statuses["not_found"],
        failed=statuses["failed"],
        pending=statuses["pending"],
        credits_consumed=counts.credits,
        credits_this_run=stats.credits,
        # Every found row beyond the one this job paid for came free.
        credits_saved=max(0, found * CREDITS_PER_FOUND - counts.credits),
        cache_hits=cache_hits,
        balance_after=stats.balance,
        failures_by_cause=dict(stats.failures),
        elapsed_s=round(time.monotonic() - started, 3),
        status="incomplete" if statuses["pending"] or counts.retryable_failed else "complete",
        stop_reason=stats.stop_reason,
        output=str(config.output),
        checkpoint=str(config.checkpoint_path),
    )


def stop_error(stats: PoolStats) -> StoppedEarly | None:
    """The exception for a pool that stopped with work left, if it did."""
    reasons: dict[str | None, type[StoppedEarly]] = {
        "no_credits": OutOfCredits,
        "budget": BudgetReached,
        "interrupted": Interrupted,
    }
    kind = reasons.get(stats.stop_reason)
    if kind is None:
        return None
    return kind(f"stopped: {stats.stop_message or stats.stop_reason}; {RESUME_HINT}")


def open_input(config: Config) -> Source:
    """The input file, checked, with its format, layout and email columns."""
    if config.input is None:
        raise InputError("an input file is required")
    return open_source(
        config.input,
        config.work_email_column,
        config.personal_email_column,
        delimiter_setting(config.delimiter),
        config.encoding,
    )


def check_job(config: Config) -> Source:
    """Every check that can fail before a request is sent."""
    source = open_input(config)
    output = config.output
    if output is None:
        raise InputError("an output path (-o) is required")
    output_kind(output, config.output_format)
    if output.exists() and output.resolve() == source.path.resolve():
        raise InputError(f"{output}: the output path is the input file; choose another -o")
    if not output.parent.is_dir():
        raise InputError(f"{output}: the output folder {output.parent} does not exist")
    if output.is_dir():
        raise InputError(f"{output}: is a directory; -o needs a file path")
    taken = [config.prefix + c for c in OUTPUT_COLUMNS if config.prefix + c in source.columns]
    if taken and not config.overwrite_columns:
        raise InputError(
            f"{config.input}: already has column(s) {taken}; "
            "add a prefix to the new columns with --prefix (e.g. --prefix lm_), "
            "or replace them with --overwrite-columns"
        )
    if not config.simulate and not config.api_key:
        raise InputError(NO_KEY_MESSAGE)
    return source


def delimiter_setting(value: str | None) -> str | None:
    """--delimiter accepts a character, or the words tab / comma / semicolon / pipe."""
    if value is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(value.lower(), value)
    if len(value) != 1:
        raise InputError(f"--delimiter {value!r}: give one character, or tab")
    return value


def job_id(config: Config) -> str:
    """Same input file (path, size, mtime) and output path: same job, so it resumes."""
    assert config.input is not None and config.output is not None
    status = config.input.stat()
    identity = "|".join(
        [
            str(config.input.resolve()),
            str(config.output.resolve()),
            str(status.st_size),
            str(status.st_mtime_ns),
        ]
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def register_keys(source: Source, checkpoint: Checkpoint, batch_rows: int) -> Counter[str]:
    """Read the whole input once; record each unique lookup key and its first row.

    Returns the number of rows per email state (lookup, invalid_email, no_email).
    """
    states: Counter[str] = Counter()
    offset = 0
    for batch in iter_batches(source, batch_rows):
        keys = batch_lookup_keys(batch, source).with_row_index("row", offset=offset)
        firsts = keys.drop_nulls("lookup_key").unique(
            "lookup_key", keep="first", maintain_order=True
        )
        checkpoint.add_keys(firsts["lookup_key"].to_list(), firsts["row"].to_list())
        for state, number in keys["email_state"].value_counts().iter_rows():
            states[state] += number
        offset += batch.num_rows
    checkpoint.db.commit()
    return states


async def estimate_async(config: Config) -> dict[str, object]:
    """What a run would do and cost, without a single lookup (`b2b-enrich estimate`)."""
    source = open_input(config)
    known_path = config.checkpoint or (config.checkpoint_path if config.output else None)
    # No checkpoint yet: count against an empty one in memory, creating no file.
    path = known_path if known_path is not None and known_path.exists() else Path(":memory:")
    async with api_for(config, require_key=False) as api:
        checkpoint = Checkpoint(path, api.identity, "estimate")
        try:
            states = register_keys(source, checkpoint, config.batch_rows)
            known = checkpoint.plan(freshness_of(config))
            unique = checkpoint.count_keys()
        finally:
            checkpoint.close()
        balance = None
        if api.api_key:
            balance = await balance_of(config, api)
    to_lookup = unique - known
    worst_case = to_lookup * CREDITS_PER_FOUND
    rows = sum(states.values())
    return {
        "rows": rows,
        "rows_with_email": rows - states["no_email"],
        "valid_email_rows": states["lookup"],
        "invalid_emails": states["invalid_email"],
        "unique_lookups": unique,
        "known_in_checkpoint": known,
        "to_look_up": to_lookup,
        "worst_case_credits": worst_case,
        "expected_duration_s": round(to_lookup / config.rate, 1),
        "rate": config.rate,
        "balance": balance,
        "balance_covers_worst_case": None if balance is None else balance >= worst_case,
    }


def freshness_of(config: Config) -> Freshness:
    return Freshness(config.max_age_found, config.max_age_miss, config.refresh, config.retry_failed)


def pool_settings(config: Config, api: Api) -> PoolSettings:
    return PoolSettings(
        url=api.url,
        api_key=api.api_key,
        rate=config.rate,
        concurrency=config.concurrency,
        timeout_s=config.timeout,
        max_retries=config.max_retries,
        max_credits=config.max_credits,
        backoff_s=config.backoff,
    )


@asynccontextmanager
async def api_for(config: Config, require_key: bool = True) -> AsyncIterator[Api]:
    """The real API, or (--simulate) a simulator started on a free loopback port."""
    if not config.simulate:
        if require_key and not config.api_key:
            raise InputError(NO_KEY_MESSAGE)
        key = config.api_key or ""
        yield Api(config.api_url, config.base_url, key, config.api_url)
        return
    key = "sim_" + secrets.token_hex(8)
    simulator = Simulator(SimulatorSettings(api_key=key, rate=config.rate))
    runner, base_url = await simulator.serve()
    try:
        url = base_url + "/" + config.endpoint.lstrip("/")
        yield Api(url, base_url, key, "simulator:" + config.endpoint)
    finally:
        await runner.cleanup()


async def balance_of(config: Config, api: Api) -> float | None:
    """The account's balance (GET /v1/credits, free); None if it cannot be read."""
    async with open_session(api.api_key, config.timeout, 1) as session:
        try:
            return await fetch_balance(session, api.base_url)
        except AuthError as error:
            raise AuthError(f"the API rejected the key in {API_KEY_ENV} ({error})") from None


async def preflight(config: Config, api: Api, pending: int) -> None:
    """One free balance check before spending: warn, or stop with --require-balance."""
    worst_case = pending * CREDITS_PER_FOUND
    if config.max_credits is not None:
        worst_case = min(worst_case, config.max_credits)
    balance = await balance_of(config, api)
    if balance is None:
        log.info("could not read the account balance; continuing")
        return
    if balance < worst_case:
        message = (
            f"the account balance ({balance:g} credits) is below this run's worst case "
            f"({worst_case} credits for {pending} lookups)"
        )
        if config.require_balance:
            raise OutOfCredits(f"{message}; nothing was sent (--require-balance)")
        log.warning("%s; the run stops cleanly if credits run out", message)


async def report_progress(stats: PoolStats, progress: Callable[[PoolStats], object] | None) -> None:
    if progress is None:
        return
    while True:
        progress(stats)
        await asyncio.sleep(0.25)


@contextmanager
def stop_on_signals(pool: Pool) -> Iterator[None]:
    """First SIGINT/SIGTERM: finish what is in flight, then stop. Second: stop now."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if pool.stopping:
            pool.abort()
        else:
            log.warning("stopping: finishing the requests in flight (Ctrl-C again to stop now)")
            pool.stop("interrupted", "interrupted")

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (e.g. enrich() from a worker thread)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
