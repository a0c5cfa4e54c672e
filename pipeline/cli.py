"""Command line: arguments -> Config -> run; messages and exit codes. Nothing else.

Exit codes: 0 every row has a final status; 1 unexpected error; 2 bad usage or
input (nothing sent); 3 stopped early, resumable; 4 the API key was rejected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.table import Table

from pipeline import job
from pipeline.checkpoint import describe
from pipeline.config import API_KEY_ENV, load_config, masked
from pipeline.errors import EXIT_INPUT, EXIT_RESUMABLE, EXIT_UNEXPECTED, EnrichError, StoppedEarly
from pipeline.progress import LiveBar, LogLines
from pipeline.simulator import Simulator, SimulatorSettings
from pipeline.summary import Summary, render

log = logging.getLogger("b2b_enrich")

RUN_EPILOG = """\
examples:
  export LEADMAGIC_API_KEY=...            # the key is read from here only
  b2b-enrich run crm.csv -o crm.enriched.csv
  b2b-enrich run contacts.parquet -o out.parquet --rate 5 --max-credits 5000
  b2b-enrich run data/sample/contacts.csv -o /tmp/out.csv --simulate

Run the same command again to resume an interrupted job: lookups already in
the checkpoint are never requested (nor paid for) twice.

exit codes: 0 complete, 2 bad input (nothing sent), 3 stopped early (resumable),
            4 API key rejected, 1 unexpected error
"""


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as every other bad input does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"b2b-enrich: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="b2b-enrich", description="Enrich a contact file with B2B profiles.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_run(commands)
    add_estimate(commands)
    add_status(commands)
    add_config(commands)
    add_simulator(commands)
    return parser


def add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="enrich a CSV or Parquet file",
        description="Look up every unique email of INPUT and write OUTPUT with profile_url, "
        "credits_consumed, lookup_status and lookup_message joined onto every row.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "input", type=Path, help="contacts file: .csv .tsv .txt (maybe .gz) or .parquet"
    )
    run.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output file: .csv .tsv (maybe .gz) or .parquet",
    )
    api = run.add_argument_group("API")
    api.add_argument(
        "--base-url", help="API root (default https://api.leadmagic.io; env LEADMAGIC_BASE_URL)"
    )
    api.add_argument("--endpoint", help="profile path (default /v1/people/b2b-profile)")
    api.add_argument("--rate", type=float, help="max requests per second (default 5 = 300/min)")
    api.add_argument("--concurrency", type=int, help="max requests in flight (default 16)")
    api.add_argument("--timeout", type=float, help="seconds per request (default 30)")
    api.add_argument(
        "--max-retries", type=int, help="retries per lookup for 5xx/network errors (default 5)"
    )
    api.add_argument(
        "--backoff", type=float, help="first retry delay in seconds, doubling (default 1)"
    )
    api.add_argument(
        "--simulate",
        action="store_true",
        default=None,
        help="use the built-in simulator; no key needed",
    )
    spend = run.add_argument_group("spend")
    spend.add_argument("--max-credits", type=int, help="never charge more than this in one run")
    spend.add_argument(
        "--require-balance",
        action="store_true",
        default=None,
        help="exit 3 before any lookup if the balance cannot cover the worst case",
    )
    cache = run.add_argument_group("checkpoint and cache")
    cache.add_argument(
        "--checkpoint", type=Path, help="SQLite checkpoint (default OUTPUT.checkpoint.sqlite)"
    )
    cache.add_argument(
        "--max-age-found", type=float, help="days a found profile is reused (default 90)"
    )
    cache.add_argument("--max-age-miss", type=float, help="days a miss is reused (default 30)")
    cache.add_argument("--refresh", action="store_true", default=None, help="ignore stored results")
    cache.add_argument(
        "--retry-failed",
        action="store_true",
        default=None,
        help="retry lookups the API rejected (400)",
    )
    columns = add_input_options(run)
    columns.add_argument("--prefix", help="prefix for the added columns, e.g. lm_")
    columns.add_argument(
        "--overwrite-columns",
        action="store_true",
        default=None,
        help="replace the input's own profile_url/credits_consumed/lookup_* columns",
    )
    out = run.add_argument_group("output")
    out.add_argument("--summary-json", type=Path, help="also write the cost summary as JSON")
    out.add_argument(
        "--output-format", choices=("csv", "tsv", "parquet"), help="default: from -o's extension"
    )
    out.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress display",
    )
    out.add_argument("--config", type=Path, help="TOML settings file (see configs/default.toml)")
    out.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines")
    out.add_argument(
        "--log-emails", action="store_true", help="show email addresses in logs (masked by default)"
    )


def add_input_options(parser: argparse.ArgumentParser) -> Any:
    """How to read the input, shared by `run` and `estimate`; returns the option group."""
    columns = parser.add_argument_group("input")
    columns.add_argument("--work-email-column", help="work email column (default: detected)")
    columns.add_argument(
        "--personal-email-column", help="personal email column (default: detected, or none)"
    )
    columns.add_argument("--delimiter", help="input delimiter (default: sniffed among , ; tab |)")
    columns.add_argument(
        "--encoding", help="input encoding (default: UTF-8/UTF-16 BOM, else cp1252)"
    )
    return columns


def add_estimate(commands: Any) -> None:
    estimate = commands.add_parser(
        "estimate",
        help="what a run would cost, without any lookup",
        description="Read INPUT and report rows, valid emails, unique lookups, how many the "
        "checkpoint already knows, the worst-case credits and the expected duration. With "
        "LEADMAGIC_API_KEY set, also the account balance (GET /v1/credits is free).",
    )
    estimate.add_argument("input", type=Path)
    estimate.add_argument(
        "-o", "--output", type=Path, help="the run's output (finds its checkpoint)"
    )
    estimate.add_argument("--checkpoint", type=Path, help="checkpoint to count known lookups in")
    estimate.add_argument("--rate", type=float, help="requests per second (default 5)")
    estimate.add_argument("--base-url", help="API root (default https://api.leadmagic.io)")
    add_input_options(estimate)
    estimate.add_argument("--simulate", action="store_true", default=None)
    estimate.add_argument("--json", action="store_true", help="print JSON")
    estimate.add_argument("--config", type=Path)


def add_status(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="what a checkpoint holds",
        description="Lookups known (found / miss), pending, failed, credits recorded, and the "
        "jobs that filled the checkpoint, with their times.",
    )
    status.add_argument("checkpoint", type=Path)
    status.add_argument("--json", action="store_true", help="print JSON")


def add_config(commands: Any) -> None:
    config = commands.add_parser(
        "config",
        help="show the effective settings",
        description="Print every setting's effective value and where it came from: flag, "
        "environment (B2B_ENRICH_<NAME>, LEADMAGIC_BASE_URL), config file, or default. "
        "The API key is shown masked.",
    )
    config.add_argument("--show", action="store_true", required=True)
    config.add_argument("--config", type=Path, help="TOML settings file")
    config.add_argument("--json", action="store_true", help="print JSON")


def add_simulator(commands: Any) -> None:
    sim = commands.add_parser(
        "simulator",
        help="run a LeadMagic-compatible API simulator",
        description="Serve a LeadMagic-compatible b2b-profile API on loopback for demos and tests.",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    sim.add_argument(
        "--rate", type=float, help="requests per second before 429 (default: unlimited)"
    )
    sim.add_argument("--found-ratio", type=float, default=0.5)
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.add_argument("--balance", type=float, default=1_000_000.0, help="credits in the account")
    sim.add_argument("--api-key", help="the only accepted key (default: any)")
    sim.add_argument("--error-rate", type=float, default=0.0, help="fraction of 500 answers")
    sim.add_argument(
        "--html-error-rate", type=float, default=0.0, help="fraction of HTML 502 pages"
    )
    sim.add_argument("--drop-rate", type=float, default=0.0, help="fraction of dropped connections")
    sim.add_argument(
        "--hang-rate", type=float, default=0.0, help="fraction of requests never answered"
    )
    sim.add_argument("--throttle-rate", type=float, default=0.0, help="fraction of spurious 429s")
    sim.add_argument("--not-found-status", type=int, choices=(200, 404), default=200)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already reported
        return int(exit_.code or 0)
    configure_logging(
        getattr(args, "log_format", None) or "text", bool(getattr(args, "log_emails", False))
    )
    try:
        if args.command == "simulator":
            return serve_simulator(args)
        if args.command == "status":
            return command_status(args)
        if args.command == "estimate":
            return command_estimate(args)
        if args.command == "config":
            return command_config(args)
        return command_run(args)
    except EnrichError as error:
        return report(error)
    except KeyboardInterrupt:
        print("b2b-enrich: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_RESUMABLE
    except Exception as error:
        print(f"b2b-enrich: unexpected error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_UNEXPECTED


def command_run(args: argparse.Namespace) -> int:
    config, _ = load_config(vars(args), config_file=args.config)
    stderr = Console(stderr=True)
    show = config.progress if config.progress is not None else stderr.is_terminal
    display = (LiveBar(stderr) if stderr.is_terminal else LogLines()) if show else None
    try:
        summary = job.run(config, display)
    except StoppedEarly as stopped:
        if display:
            display.close()
        if isinstance(stopped.summary, Summary):
            finish(stopped.summary, config.summary_json)
        raise
    if display:
        display.close()
    finish(summary, config.summary_json)
    if summary.status != "complete":
        print(
            f"b2b-enrich: {summary.pending} rows pending, some lookups failed after their "
            "retries; run the same command again to retry them",
            file=sys.stderr,
        )
        return EXIT_RESUMABLE
    return 0


def command_estimate(args: argparse.Namespace) -> int:
    config, _ = load_config(vars(args), config_file=args.config)
    facts = asyncio.run(job.estimate_async(config))
    print_facts(facts, "b2b-enrich estimate", args.json)
    return 0


def command_status(args: argparse.Namespace) -> int:
    facts = describe(args.checkpoint)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    jobs = cast(list[dict[str, Any]], facts.pop("jobs"))
    print_facts(facts, "b2b-enrich checkpoint", False)
    table = Table(title="jobs", title_justify="left")
    for name in ("input", "output", "first run", "last run", "runs", "calls", "credits", "pending"):
        table.add_column(name)
    for entry in jobs:
        table.add_row(
            entry["input_path"],
            entry["output_path"],
            when(entry["first_run_at"]),
            when(entry["last_run_at"]),
            str(entry["runs"]),
            str(entry["api_calls"]),
            str(entry["credits"]),
            str(entry["pending"]),
        )
    Console().print(table)
    return 0


def command_config(args: argparse.Namespace) -> int:
    config, sources = load_config({}, config_file=args.config)
    values = masked(config)
    sources["api_key"] = "environment" if config.api_key else "not set"
    if args.json:
        print(json.dumps({k: {"value": v, "source": sources[k]} for k, v in values.items()}))
        return 0
    table = Table(title="b2b-enrich settings", title_justify="left")
    for name in ("setting", "value", "from"):
        table.add_column(name)
    for name, value in values.items():
        table.add_row(name, "-" if value is None else str(value), sources[name])
    Console().print(table)
    return 0


def print_facts(facts: dict[str, object], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(facts, indent=2))
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for name, value in facts.items():
        table.add_row(name.replace("_", " "), "-" if value is None else str(value))
    Console().print(table)


def when(timestamp: object) -> str:
    moment = dt.datetime.fromtimestamp(float(timestamp), tz=dt.UTC)  # type: ignore[arg-type]
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def finish(summary: Summary, summary_json: Path | None) -> None:
    render(summary, Console())
    if summary_json is not None:
        summary.save_json(summary_json)


def report(error: EnrichError) -> int:
    log.error("error: %s", error, extra={"event": "error"})
    return error.exit_code


def serve_simulator(args: argparse.Namespace) -> int:
    settings = SimulatorSettings(
        api_key=args.api_key,
        rate=args.rate,
        found_ratio=args.found_ratio,
        latency_ms=args.latency_ms,
        balance=args.balance,
        error_rate=args.error_rate,
        html_error_rate=args.html_error_rate,
        drop_rate=args.drop_rate,
        hang_rate=args.hang_rate,
        throttle_rate=args.throttle_rate,
        not_found_status=args.not_found_status,
    )

    async def serve() -> None:
        runner, url = await Simulator(settings).serve(args.host, args.port)
        print(f"simulator listening on {url}  (stats: {url}/_simulator/stats)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


class JsonLines(logging.Formatter):
    """One JSON object per line, for schedulers: time, level, event, counts."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "message"),
            "message": record.getMessage(),
        }
        counts = getattr(record, "counts", None)
        if counts:
            entry["counts"] = counts
        return json.dumps(entry)


class HideKey(logging.Filter):
    """Defence in depth: no log line ever carries the API key."""

    def __init__(self, key: str | None) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        if self.key and self.key in record.getMessage():
            record.msg, record.args = record.getMessage().replace(self.key, "****"), None
        return True


class MaskEmails(logging.Filter):
    """Email addresses in log lines become a***@acme.com (unless --log-emails)."""

    PATTERN = re.compile(r"([^\s@<>()\[\],;:\"']{1})[^\s@<>()\[\],;:\"']*@([\w.-]+\.\w+)")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked_text = self.PATTERN.sub(r"\1***@\2", message)
        if masked_text != message:
            record.msg, record.args = masked_text, None
        return True


def configure_logging(log_format: str = "text", log_emails: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("b2b-enrich: %(message)s"))
    handler.addFilter(HideKey(os.environ.get(API_KEY_ENV)))
    if not log_emails:
        handler.addFilter(MaskEmails())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
