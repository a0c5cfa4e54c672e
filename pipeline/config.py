"""Settings: flags, then environment, then the --config TOML file, then defaults.

Every setting is a field of `Config`; `configs/default.toml` documents each one.
The API key comes from LEADMAGIC_API_KEY (or the Python API) and nowhere else.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import InputError

DEFAULT_BASE_URL = "https://api.leadmagic.io"
ENV_PREFIX = "B2B_ENRICH_"
API_KEY_ENV = "LEADMAGIC_API_KEY"
BASE_URL_ENV = "LEADMAGIC_BASE_URL"


@dataclass
class Config:
    """Everything one run needs to know. Field names are the TOML keys."""

    input: Path | None = None
    output: Path | None = None
    base_url: str = DEFAULT_BASE_URL
    endpoint: str = "/v1/people/b2b-profile"
    rate: float = 5.0
    concurrency: int = 16
    checkpoint: Path | None = None
    work_email_column: str | None = None
    personal_email_column: str | None = None
    summary_json: Path | None = None
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 1.0
    max_credits: int | None = None
    require_balance: bool = False
    max_age_found: float = 90.0
    max_age_miss: float = 30.0
    refresh: bool = False
    retry_failed: bool = False
    prefix: str = ""
    overwrite_columns: bool = False
    delimiter: str | None = None  # sniffed among , ; tab |
    encoding: str | None = None  # sniffed: UTF-8 (BOM or not), UTF-16 with BOM, else cp1252
    output_format: str | None = None  # csv, tsv, parquet; default: from the output's extension
    batch_rows: int = 100_000
    progress: bool | None = None  # None: on when stderr is a terminal
    simulate: bool = False
    api_key: str | None = field(default=None, repr=False)

    @property
    def checkpoint_path(self) -> Path:
        if self.checkpoint is not None:
            return self.checkpoint
        if self.output is None:
            raise InputError("an output path is needed to name the default checkpoint")
        return self.output.with_name(self.output.name + ".checkpoint.sqlite")

    @property
    def api_url(self) -> str:
        return self.base_url.rstrip("/") + "/" + self.endpoint.lstrip("/")


SETTINGS = {f.name: f for f in fields(Config) if f.name not in ("input", "output", "api_key")}


def load_config(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> tuple[Config, dict[str, str]]:
    """The effective Config and, per setting, where its value came from.

    `flags` may hold other names too (a parsed command line): only settings,
    `input`, `output` and `api_key` are read from it.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources = dict.fromkeys(SETTINGS, "default")
    if config_file is not None:
        for name, value in read_toml(config_file).items():
            values[name] = convert(name, value, f"{config_file}")
            sources[name] = f"config file {config_file}"
    for name, value in env_settings(env).items():
        values[name] = value
        sources[name] = "environment"
    for name, value in flags.items():
        if value is not None and name in SETTINGS:
            values[name] = convert(name, value, f"--{name.replace('_', '-')}")
            sources[name] = "flag"
    config = Config(**values)
    config.input = as_path(flags.get("input"))
    config.output = as_path(flags.get("output"))
    config.api_key = flags.get("api_key") or env.get(API_KEY_ENV) or None
    validate(config)
    return config, sources


def read_toml(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid TOML: {error}") from None
    settings = document.get("b2b-enrich", document)
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise InputError(f"{path}: unknown settings {unknown}; see configs/default.toml")
    return settings


def env_settings(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if env.get(BASE_URL_ENV):
        found["base_url"] = env[BASE_URL_ENV]
    for name in SETTINGS:
        variable = ENV_PREFIX + name.upper()
        if variable in env:
            found[name] = convert(name, env[variable], variable)
    return found


def convert(name: str, value: Any, origin: str) -> Any:
    """Coerce a value from a flag, the environment or TOML to the setting's type."""
    kind = str(SETTINGS[name].type)
    try:
        if value is None or (isinstance(value, str) and value == "" and "None" in kind):
            return None
        if kind.startswith("bool"):
            return parse_bool(value)
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("Path"):
            return Path(value)
        return str(value)
    except ValueError:
        raise InputError(f"{origin}: {value!r} is not a valid value for {name}") from None


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def as_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def validate(config: Config) -> None:
    """Refuse settings that cannot work, before anything is read or sent."""
    checks = [
        (config.rate > 0, "--rate must be above 0"),
        (config.concurrency >= 1, "--concurrency must be at least 1"),
        (config.timeout > 0, "--timeout must be above 0"),
        (config.max_retries >= 0, "--max-retries must be 0 or more"),
        (config.max_credits is None or config.max_credits >= 0, "--max-credits must be >= 0"),
        (config.batch_rows >= 1, "batch_rows must be at least 1"),
        (config.backoff >= 0, "backoff must be 0 or more"),
        (config.base_url.startswith(("http://", "https://")), "--base-url must be http(s)://..."),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)


def masked(config: Config) -> dict[str, Any]:
    """The settings as plain values, the API key masked."""
    values = {name: getattr(config, name) for name in SETTINGS}
    values = {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
    values["api_key"] = mask_key(config.api_key)
    return values


def mask_key(key: str | None) -> str | None:
    return "**** (set)" if key else None
