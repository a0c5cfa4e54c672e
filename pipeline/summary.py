"""Counts and credits of one run -> a table for people and JSON for machines."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class Summary:
    """The cost summary of one run; its fields are the keys of the JSON summary.

    Row counts (`found`, `not_found`, `failed`, `pending`) count output rows;
    `unique_lookups` counts distinct lookup keys.
    """

    rows: int = 0
    rows_with_email: int = 0
    invalid_emails: int = 0
    no_email: int = 0
    unique_lookups: int = 0
    api_calls: int = 0
    retries: int = 0
    throttled: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0
    pending: int = 0
    credits_consumed: int = 0
    credits_this_run: int = 0
    credits_saved: int = 0
    cache_hits: int = 0
    balance_after: float | None = None
    failures_by_cause: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    status: str = "complete"  # complete or incomplete
    stop_reason: str | None = None
    output: str = ""
    checkpoint: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def save_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def render(summary: Summary, console: Console) -> None:
    """Print the summary as a two-column table."""
    table = Table(title="b2b-enrich cost summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    rows: list[tuple[str, object]] = [
        ("rows", summary.rows),
        ("rows with an email", summary.rows_with_email),
        ("invalid emails (not sent)", summary.invalid_emails),
        ("rows without email", summary.no_email),
        ("unique lookups", summary.unique_lookups),
        ("answered from checkpoint", summary.cache_hits),
        ("API calls this run", summary.api_calls),
        ("  of which retries", summary.retries),
        ("  of which throttled (429)", summary.throttled),
        ("rows found", summary.found),
        ("rows not found", summary.not_found),
        ("rows failed", summary.failed),
        ("rows pending", summary.pending),
        ("credits this run", summary.credits_this_run),
        ("credits for this job (all runs)", summary.credits_consumed),
        ("credits saved (duplicates, cache)", summary.credits_saved),
    ]
    if summary.balance_after is not None:
        rows.append(("account balance after", f"{summary.balance_after:g}"))
    for cause, number in sorted(summary.failures_by_cause.items()):
        rows.append((f"  failed: {cause}", number))
    rows += [
        ("elapsed", f"{summary.elapsed_s:.1f} s"),
        ("status", summary.status),
        ("output", summary.output),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    console.print(table)
