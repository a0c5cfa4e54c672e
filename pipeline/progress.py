"""Live progress of the lookups: a rich bar on a terminal, a log line every 10 s elsewhere."""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from pipeline.pool import PoolStats

log = logging.getLogger("b2b_enrich")
LOG_EVERY_S = 10.0


class Meter:
    """Requests per second over the last few seconds."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.samples: list[tuple[float, int]] = []

    def rate(self, calls: int) -> float:
        now = time.monotonic()
        self.samples = [(t, n) for t, n in self.samples if now - t <= 5.0] + [(now, calls)]
        first_t, first_n = self.samples[0]
        return (calls - first_n) / (now - first_t) if now > first_t else 0.0


class LiveBar:
    """Lookups done of total, requests/s, credits, retries, 429s and ETA."""

    def __init__(self, console: Console) -> None:
        self.meter = Meter()
        self.progress = Progress(
            TextColumn("lookups"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def __call__(self, stats: PoolStats) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("lookups", total=stats.total, detail="")
        self.progress.update(self.task, completed=stats.done, detail=describe(stats, self.meter))

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


class LogLines:
    """For schedulers and pipes: one line about every 10 seconds."""

    def __init__(self) -> None:
        self.meter = Meter()
        self.last = 0.0

    def __call__(self, stats: PoolStats) -> None:
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            counts = {
                "done": stats.done,
                "total": stats.total,
                "api_calls": stats.api_calls,
                "credits": stats.credits,
                "retries": stats.retries,
                "throttled": stats.throttled,
            }
            log.info(
                "lookups %d/%d %s",
                stats.done,
                stats.total,
                describe(stats, self.meter),
                extra={"event": "progress", "counts": counts},
            )

    def close(self) -> None:
        pass


def describe(stats: PoolStats, meter: Meter) -> str:
    return (
        f"{meter.rate(stats.api_calls):.1f} req/s  {stats.credits} credits  "
        f"{stats.retries} retries  {stats.throttled} x 429"
    )
