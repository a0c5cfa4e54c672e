"""The Python API: `enrich()` and `enrich_async()`, the same job the CLI runs.

They raise the exceptions of pipeline.errors instead of exiting; a run that
finishes with rows still failed returns a Summary whose status is "incomplete".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import job
from pipeline.config import Config, load_config
from pipeline.pool import PoolStats
from pipeline.summary import Summary


def build_config(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: Config | str | os.PathLike[str] | None = None,
    **settings: Any,
) -> Config:
    """Arguments, then environment, then a TOML file (or a Config's values), then defaults."""
    flags = {name: value for name, value in settings.items() if value is not None}
    flags.update(input=Path(input), output=Path(output))
    if isinstance(config, Config):
        base = {k: v for k, v in vars(config).items() if k not in ("input", "output")}
        flags = {**{k: v for k, v in base.items() if v is not None}, **flags}
        config_file = None
    else:
        config_file = Path(config) if config is not None else None
    effective, _ = load_config(flags, config_file=config_file)
    return effective


def enrich(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    rate: float | None = None,
    concurrency: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    max_credits: int | None = None,
    config: Config | str | os.PathLike[str] | None = None,
    progress: bool | Callable[[PoolStats], object] = False,
    **settings: Any,
) -> Summary:
    """Enrich `input` into `output` and return the cost Summary.

    Any other setting of configs/default.toml may be passed by name
    (simulate=True, max_retries=3, ...). Raises InputError, AuthError,
    OutOfCredits, BudgetReached or Interrupted (all EnrichError).
    """
    effective = build_config(
        input,
        output,
        config,
        api_key=api_key,
        base_url=base_url,
        rate=rate,
        concurrency=concurrency,
        checkpoint=checkpoint,
        max_credits=max_credits,
        **settings,
    )
    return job.run(effective, progress_callback(progress))


async def enrich_async(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    config: Config | str | os.PathLike[str] | None = None,
    progress: bool | Callable[[PoolStats], object] = False,
    **settings: Any,
) -> Summary:
    """`enrich` for code already running an event loop (same settings, same errors)."""
    effective = build_config(input, output, config, **settings)
    return await job.run_async(effective, progress_callback(progress))


def progress_callback(
    progress: bool | Callable[[PoolStats], object],
) -> Callable[[PoolStats], object] | None:
    if callable(progress):
        return progress
    if progress:
        from pipeline.progress import LogLines

        return LogLines()
    return None
