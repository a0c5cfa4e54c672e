"""Benchmarks of b2b-enrich against the simulator; prints figures and their targets.

    .venv/bin/python scripts/bench.py [--rows 2000000] [--unique 2000]

1. rows/s and peak RSS enriching 2M- and 10M-row CSV and Parquet files whose emails
   repeat (target >= 300k rows/s, peak RSS < 512 MB);
2. rate accuracy: N lookups at --rate R with 50 ms latency (target: all sent within
   N/R x 1.03 + 1 s; never more than R in any one-second window);
3. overhead: requests/s of the pool (with checkpoint writes) against a bare aiohttp loop on
   the same zero-latency simulator (target >= 0.8x);
4. soak: a 1M-row mixed file (duplicates, junk, blanks, 9% faults): RSS at 25/50/75/100%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import polars as pl

from pipeline.checkpoint import Checkpoint
from pipeline.emails import lookup_key
from pipeline.limiter import RateLimiter
from pipeline.pool import Pool, PoolSettings
from pipeline.simulator import SimulatorSettings, most_in_any_second, running

KEY = "bench-key"


def contacts_frame(rows: int, unique: int) -> pl.DataFrame:
    ids = pl.int_range(0, rows, eager=True)
    person = pl.col("Record ID") % unique
    return pl.DataFrame({"Record ID": ids}).with_columns(
        pl.format("Person {}", pl.col("Record ID")).alias("Name"),
        pl.format("user{}@corp{}.com", person, person % 97).alias("Email"),
        pl.lit("Acme, Inc.").alias("Company"),
        pl.format('note {} with "quotes"', pl.col("Record ID") % 13).alias("Notes"),
    )


def make_csv(path: Path, rows: int, unique: int) -> None:
    contacts_frame(rows, unique).write_csv(path)


def make_mixed_csv(path: Path, rows: int, unique: int) -> None:
    """Duplicates differing in case and spaces, junk and blanks, as real exports hold."""
    frame = contacts_frame(rows, unique).with_columns(
        pl.when(pl.col("Record ID") % 20 == 0)
        .then(pl.lit("n/a"))
        .when(pl.col("Record ID") % 20 == 1)
        .then(pl.lit(None))
        .when(pl.col("Record ID") % 3 == 0)
        .then(pl.format("  {} ", pl.col("Email").str.to_uppercase()))
        .otherwise(pl.col("Email"))
        .alias("Email")
    )
    frame.write_csv(path)


def memory_mb(pid: int) -> tuple[int, int] | None:
    """(current RSS, peak RSS since exec) of a process, in MB, from /proc."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) // 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    if len(fields) < 2:
        return None
    return fields["VmRSS"], fields["VmHWM"]


def run_cli(url: str, source: Path, output: Path, *extra: str) -> tuple[float, float, list[int]]:
    """Wall seconds, peak RSS (MB) and RSS samples (every 0.1 s) of one `b2b-enrich run`.

    The peak is the kernel's VmHWM, which starts afresh at exec (ru_maxrss would
    count the benchmark's own memory, inherited at fork).
    """
    command = [sys.executable, "-m", "pipeline", "run", str(source), "-o", str(output)]
    command += ["--base-url", url, "--rate", "100000", "--concurrency", "64", "--no-progress"]
    command += list(extra)
    env = dict(os.environ, LEADMAGIC_API_KEY=KEY)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    samples, peak = [], 0
    while True:
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        memory = memory_mb(process.pid)
        if memory:
            samples.append(memory[0])
            peak = max(peak, memory[1])
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench run failed: exit code {os.waitstatus_to_exitcode(status)}")
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, peak, samples


def bench_rows(rows: int, unique: int, folder: Path, fmt: str) -> None:
    source = folder / f"big-{rows}.{fmt}"
    if fmt == "csv":
        make_csv(source, rows, unique)
    else:
        contacts_frame(rows, unique).write_parquet(source)
    size_mb = source.stat().st_size / 1e6
    with running(SimulatorSettings(api_key=KEY)) as (_, url):
        elapsed, peak, _ = run_cli(url, source, folder / f"big-{rows}.out.{fmt}")
    source.unlink()
    speed = rows / elapsed
    print(f"[rows] {rows:,} rows, {fmt} ({size_mb:.0f} MB, {unique:,} unique emails)")
    print(
        f"       {elapsed:.1f} s end to end = {speed:,.0f} rows/s   target >= 300,000  "
        f"{'OK' if speed >= 300_000 else 'MISSED'}"
    )
    print(f"       peak RSS {peak:.0f} MB   target < 512 MB  {'OK' if peak < 512 else 'MISSED'}")


def bench_soak(rows: int, unique: int, folder: Path) -> None:
    source = folder / "soak.csv"
    make_mixed_csv(source, rows, unique)
    faults = SimulatorSettings(api_key=KEY, error_rate=0.05, html_error_rate=0.02, drop_rate=0.02)
    with running(faults) as (sim, url):
        elapsed, peak, samples = run_cli(
            url, source, folder / "soak.out.csv", "--backoff", "0.01", "--max-retries", "10"
        )
        faults_seen = sim.stats.faults
    quarters = [samples[max(0, len(samples) * q // 4 - 1)] for q in (1, 2, 3, 4)]
    print(
        f"[soak] {rows:,} mixed rows ({unique:,} unique, junk, blanks, case/space duplicates), "
        f"{faults_seen:,} injected faults: {elapsed:.1f} s"
    )
    print(
        "       RSS at 25/50/75/100% of the run: "
        + " / ".join(f"{mb} MB" for mb in quarters)
        + f"; peak {peak:.0f} MB   target: flat, < 512 MB  {'OK' if peak < 512 else 'MISSED'}"
    )


def discard(results: object) -> None:
    """Pacing only: nothing to store."""


class RecordingLimiter(RateLimiter):
    """The pool's limiter, keeping every send time for the client-side figure."""

    def __init__(self, max_rate: float) -> None:
        super().__init__(max_rate)
        self.sends: list[float] = []

    def sent(self) -> float:
        moment = super().sent()
        self.sends.append(moment)
        return moment


async def paced(url: str, count: int, rate: float) -> list[float]:
    pool = Pool(PoolSettings(url=url, api_key=KEY, rate=rate, concurrency=64), discard)
    limiter = RecordingLimiter(rate)
    pool.limiter = limiter
    keys = [lookup_key(f"r{i}@pace.com", None) for i in range(count)]
    await pool.run([keys], count)
    return limiter.sends


def bench_rate(count: int, rate: float) -> None:
    """A strict simulator in its own process, so its arrival stamps are its own."""
    process, base = start_simulator_process("--latency-ms", "50", "--rate", f"{rate:g}")
    try:
        sends = asyncio.run(paced(base + "/v1/people/b2b-profile", count, rate))
        with urllib.request.urlopen(base + "/_simulator/stats", timeout=10) as answer:
            server = json.loads(answer.read())
    finally:
        process.terminate()
        process.wait()
    span = server["arrival_span_s"]
    bound = count / rate * 1.03 + 1
    client_most, server_most = most_in_any_second(sends), server["max_in_any_second"]
    print(
        f"[rate] {count} lookups at --rate {rate:g}, 50 ms latency: sent over {span:.2f} s "
        f"(ideal {(count - 1) / rate:.2f} s, target <= {bound:.2f} s) "
        f"{'OK' if span <= bound else 'MISSED'}"
    )
    worst = max(client_most, server_most)
    print(
        f"       most in any one-second window: {client_most} sent, {server_most} arrived, "
        f"{server['over_limit']} refused by the strict server   target <= {rate:g}  "
        f"{'OK' if worst <= rate and server['over_limit'] == 0 else 'MISSED'}"
    )


async def bare_loop(url: str, count: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, client CPU microseconds per request) of one session and N tasks."""
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            async with (
                gate,
                session.post(
                    url, json={"work_email": f"b{i}@bare.com"}, headers={"X-API-Key": KEY}
                ) as response,
            ):
                await response.read()

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(count)))
        return rates(count, started, cpu)


def rates(count: int, started: float, cpu: float) -> tuple[float, float]:
    elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    return count / elapsed, cpu_used / count * 1e6


async def pool_loop(url: str, count: int, concurrency: int, folder: Path) -> tuple[float, float]:
    """The same for the pool, with its checkpoint writes."""
    folder.mkdir(exist_ok=True)
    checkpoint = Checkpoint(folder / "overhead.sqlite", "bench", "bench-job")
    keys = [lookup_key(f"p{i}@pool.com", None) for i in range(count)]
    checkpoint.add_keys(keys, list(range(count)))
    settings = PoolSettings(url=url, api_key=KEY, rate=1e9, concurrency=concurrency)
    pool = Pool(settings, checkpoint.record)
    started, cpu = time.perf_counter(), time.process_time()
    await pool.run(checkpoint.iter_pending(), count)
    measured = rates(count, started, cpu)
    checkpoint.close()
    return measured


def pin(process_id: int, core: int) -> None:
    """Keep client and server on separate cores so they never steal each other's time."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(process_id, {core})


def start_simulator_process(*extra: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "pipeline", "simulator", "--port", "0", "--api-key", KEY]
    command += list(extra)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    pin(process.pid, 1)
    assert process.stdout is not None
    match = re.search(r"http://\S+", process.stdout.readline())
    assert match, "the simulator did not start"
    return process, match.group(0)


def bench_overhead(count: int, folder: Path, rounds: int = 15) -> None:
    """Alternate bare and pool rounds on one simulator; compare medians (2 shared cores)."""
    process, base = start_simulator_process()
    everywhere = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pin(0, 0)
    bare, ours = [], []
    try:
        url = base + "/v1/people/b2b-profile"
        asyncio.run(bare_loop(url, 500, 64))  # warm up the server
        for index in range(rounds):
            bare.append(asyncio.run(bare_loop(url, count, 64)))
            ours.append(asyncio.run(pool_loop(url, count, 64, folder / f"r{index}")))
    finally:
        process.terminate()
        process.wait()
        if everywhere:
            os.sched_setaffinity(0, everywhere)
    bare_rate, our_rate = (statistics.median(r for r, _ in runs) for runs in (bare, ours))
    bare_cpu, our_cpu = (statistics.median(c for _, c in runs) for runs in (bare, ours))
    ratio = our_rate / bare_rate
    print(
        f"[overhead] {count} requests x {rounds} alternating rounds, zero latency, no rate "
        f"limit: bare aiohttp loop {bare_rate:,.0f} req/s, pool + checkpoint {our_rate:,.0f} "
        f"req/s (medians) = {ratio:.2f}x   target >= 0.8x  {'OK' if ratio >= 0.8 else 'MISSED'}"
    )
    print(
        f"           client CPU per request: bare {bare_cpu:.0f} us, pool {our_cpu:.0f} us "
        f"= {bare_cpu / our_cpu:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--large-rows", type=int, default=10_000_000)
    parser.add_argument("--unique", type=int, default=2_000)
    parser.add_argument("--soak-rows", type=int, default=1_000_000)
    parser.add_argument("--soak-unique", type=int, default=50_000)
    parser.add_argument("--rate-lookups", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--overhead-requests", type=int, default=5_000)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"polars {pl.__version__}, aiohttp {aiohttp.__version__}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for rows in (args.rows, args.large_rows):
            for fmt in ("csv", "parquet"):
                bench_rows(rows, args.unique, Path(folder), fmt)
        bench_rate(args.rate_lookups, args.rate)
        bench_overhead(args.overhead_requests, Path(folder))
        bench_soak(args.soak_rows, args.soak_unique, Path(folder))


if __name__ == "__main__":
    main()
