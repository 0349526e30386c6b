"""Settings from the environment (SPEC §3). ``os.environ`` is read here and in ``config`` only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bkvy.core.config.gateway import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    config_dir: Path = Path("config")
    host: str = "0.0.0.0"
    port: int = Field(default=10006, ge=1, le=65535)
    log_dir: Path = Path("logs")
    transaction_logging: bool = False
    summary_stats: bool = False
    stats_max_keys_per_dimension: int = Field(default=200, ge=1, le=100_000)  # names per statistics dimension
    dashboard_enabled: bool = False
    dashboard_allowed_ips: tuple[str, ...] = ("127.0.0.1", "::1")
    trusted_proxies: tuple[str, ...] = ()
    cors_allowed_origins: tuple[str, ...] = ()  # web origins a browser may call from (checked in api.cross_origin)
    monitor_allowed_ips: tuple[str, ...] | None = None  # None: the dashboard's (see monitor_allowlist)
    monitor_api_key: str | None = None
    log_format: Literal["text", "json"] = "text"
    transaction_log_retention_days: int = Field(default=30, ge=1)
    transaction_log_max_bytes: int = Field(default=50 * 1024 * 1024, ge=64 * 1024)
    circuit_breaker_enabled: bool = True
    circuit_failure_threshold: int = Field(default=3, ge=1)
    circuit_sliding_window_seconds: float = Field(default=600.0, gt=0)
    circuit_sliding_window_threshold: int = Field(default=5, ge=1)
    circuit_max_backoff_seconds: float = Field(default=1800.0, gt=0)
    circuit_flapping_threshold: int = Field(default=3, ge=1)
    health_probe_enabled: bool = True
    health_probe_interval_seconds: float = Field(default=10.0, gt=0)
    health_probe_timeout_seconds: float = Field(default=10.0, gt=0)
    request_soft_timeout_seconds: float = Field(default=30.0, gt=0)
    request_hard_timeout_seconds: float = Field(default=120.0, gt=0)
    stream_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    stream_write_timeout_seconds: float = Field(default=30.0, gt=0)  # a client that stops reading a stream
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)  # SIGTERM: requests in flight get this long
    hedging: bool = True
    hedge_budget_percent: float = Field(default=5.0, ge=0, le=100)
    hedge_min_delay_ms: float = Field(default=250.0, ge=0)
    hedge_delay_factor: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    header_read_timeout_seconds: float = Field(default=5.0, gt=0)
    body_read_timeout_seconds: float = Field(default=10.0, gt=0)
    max_connections: int | None = Field(default=None, ge=1)  # None: from RLIMIT_NOFILE (api/server.py)
    admin_api_key: str | None = None
    require_client_keys: bool = False
    redis_url: str | None = None  # shared state for workers and replicas (docs/SCALING.md); None: in-process
    redis_prefix: str = Field(default="bkvy:", min_length=1, max_length=64)
    redis_timeout_ms: float = Field(default=50.0, gt=0, le=60_000)
    shadow_max_concurrency: int = Field(default=4, ge=1, le=1024)  # shadow calls in flight; more are dropped
    shadow_daily_budget_usd: float = Field(default=1.0, ge=0)  # shadow spend per UTC day; 0: no shadow calls
    cache_redis_url: str | None = None  # the response cache's own Redis (issue 20 §1); None: in memory

    @property
    def monitor_allowlist(self) -> tuple[str, ...]:
        """Who may read the monitoring endpoints: MONITOR_ALLOWED_IPS, else DASHBOARD_ALLOWED_IPS."""
        return self.dashboard_allowed_ips if self.monitor_allowed_ips is None else self.monitor_allowed_ips

    @field_validator(
        "dashboard_allowed_ips", "trusted_proxies", "monitor_allowed_ips", "cors_allowed_origins", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("redis_url", "cache_redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, has_separator, rest = value.partition("://")
        if not has_separator or scheme not in ("redis", "rediss", "unix") or not rest:
            raise ValueError(
                "is not a Redis URL. Fix: use redis://[:password@]host:port/db, rediss://... or unix:///path.sock"
            )
        return value

    @model_validator(mode="after")
    def _soft_before_hard(self) -> Settings:
        # The soft timeout starts a hedge (or a switch) before the deadline; past the deadline it means nothing.
        if self.request_soft_timeout_seconds > self.request_hard_timeout_seconds:
            raise ValueError(
                f"REQUEST_SOFT_TIMEOUT_SECONDS ({self.request_soft_timeout_seconds:g}) is above "
                f"REQUEST_HARD_TIMEOUT_SECONDS ({self.request_hard_timeout_seconds:g}). Fix: make the soft timeout "
                "the shorter one"
            )
        return self


_ENV_NAMES = {
    "BKVY_CONFIG_DIR": "config_dir",
    "BKVY_HOST": "host",
    "BKVY_PORT": "port",
    "LOG_DIR": "log_dir",
    "TRANSACTION_LOGGING": "transaction_logging",
    "SUMMARY_STATS": "summary_stats",
    "STATS_MAX_KEYS_PER_DIMENSION": "stats_max_keys_per_dimension",
    "DASHBOARD_ENABLED": "dashboard_enabled",
    "DASHBOARD_ALLOWED_IPS": "dashboard_allowed_ips",
    "TRUSTED_PROXIES": "trusted_proxies",
    "CORS_ALLOWED_ORIGINS": "cors_allowed_origins",
    "MONITOR_ALLOWED_IPS": "monitor_allowed_ips",
    "BKVY_MONITOR_API_KEY": "monitor_api_key",
    "LOG_FORMAT": "log_format",
    "TRANSACTION_LOG_RETENTION_DAYS": "transaction_log_retention_days",
    "TRANSACTION_LOG_MAX_BYTES": "transaction_log_max_bytes",
    "CIRCUIT_BREAKER_ENABLED": "circuit_breaker_enabled",
    "CIRCUIT_FAILURE_THRESHOLD": "circuit_failure_threshold",
    "CIRCUIT_SLIDING_WINDOW_SECONDS": "circuit_sliding_window_seconds",
    "CIRCUIT_SLIDING_WINDOW_THRESHOLD": "circuit_sliding_window_threshold",
    "CIRCUIT_MAX_BACKOFF_SECONDS": "circuit_max_backoff_seconds",
    "CIRCUIT_FLAPPING_THRESHOLD": "circuit_flapping_threshold",
    "HEALTH_PROBE_ENABLED": "health_probe_enabled",
    "HEALTH_PROBE_INTERVAL_SECONDS": "health_probe_interval_seconds",
    "HEALTH_PROBE_TIMEOUT_SECONDS": "health_probe_timeout_seconds",
    "REQUEST_SOFT_TIMEOUT_SECONDS": "request_soft_timeout_seconds",
    "REQUEST_HARD_TIMEOUT_SECONDS": "request_hard_timeout_seconds",
    "STREAM_IDLE_TIMEOUT_SECONDS": "stream_idle_timeout_seconds",
    "STREAM_WRITE_TIMEOUT_SECONDS": "stream_write_timeout_seconds",
    "SHUTDOWN_GRACE_SECONDS": "shutdown_grace_seconds",
    "HEDGING": "hedging",
    "HEDGE_BUDGET_PERCENT": "hedge_budget_percent",
    "HEDGE_MIN_DELAY_MS": "hedge_min_delay_ms",
    "HEDGE_DELAY_FACTOR": "hedge_delay_factor",
    "BKVY_MAX_BODY_BYTES": "max_body_bytes",
    "BKVY_MAX_HEADER_BYTES": "max_header_bytes",
    "HEADER_READ_TIMEOUT_SECONDS": "header_read_timeout_seconds",
    "BODY_READ_TIMEOUT_SECONDS": "body_read_timeout_seconds",
    "BKVY_MAX_CONNECTIONS": "max_connections",
    "BKVY_ADMIN_API_KEY": "admin_api_key",
    "BKVY_REQUIRE_CLIENT_KEYS": "require_client_keys",
    "REDIS_URL": "redis_url",
    "BKVY_REDIS_PREFIX": "redis_prefix",
    "REDIS_TIMEOUT_MS": "redis_timeout_ms",
    "SHADOW_MAX_CONCURRENCY": "shadow_max_concurrency",
    "SHADOW_DAILY_BUDGET_USD": "shadow_daily_budget_usd",
    "CACHE_REDIS_URL": "cache_redis_url",
}
_BOOL_FIELDS = {name for name, info in Settings.model_fields.items() if info.annotation is bool}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from environment variables (names as in SPEC §3). Raises ConfigError."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for variable, field in _ENV_NAMES.items():
        if variable not in environ:
            continue
        raw = environ[variable].strip()
        if field in _BOOL_FIELDS:
            if raw.lower() not in _TRUE | _FALSE:
                raise ConfigError(f"environment: {variable}={raw!r} is not a boolean. Fix: use true or false")
            values[field] = raw.lower() in _TRUE
        elif field in ("admin_api_key", "monitor_api_key", "max_connections", "redis_url"):
            values[field] = raw or None
        elif field == "log_format":
            values[field] = raw.lower()
        else:
            values[field] = raw
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across fields names its variables itself
            raise ConfigError(f"environment: {first['msg'].removeprefix('Value error, ')}") from None
        field = str(first["loc"][0])
        variable = next((v for v, f in _ENV_NAMES.items() if f == field), field)
        raise ConfigError(f"environment: {variable}: {first['msg']}") from None
