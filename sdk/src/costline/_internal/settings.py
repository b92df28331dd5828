"""Every option the SDK reads from the environment, read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
TRACES_PATH = "/v1/traces"
# Short on purpose: the exporter runs off the request path, but flush() and exit wait for it.
EXPORT_TIMEOUT_S = 3.0
SHUTDOWN_TIMEOUT_S = 3.0

_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Settings:
    endpoint: str
    api_key: str | None
    service_name: str | None
    environment: str | None
    enabled: bool

    @property
    def traces_url(self) -> str:
        base = self.endpoint.rstrip("/")
        return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def resolve(
    *,
    endpoint: str | None,
    api_key: str | None,
    service_name: str | None,
    environment: str | None,
    enabled: bool,
) -> Settings:
    """Arguments win over the environment; the environment wins over defaults."""
    env = os.environ
    return Settings(
        endpoint=endpoint or env.get("COSTLINE_ENDPOINT") or DEFAULT_ENDPOINT,
        api_key=api_key or env.get("COSTLINE_API_KEY") or None,
        service_name=service_name or env.get("OTEL_SERVICE_NAME") or None,
        environment=environment or env.get("COSTLINE_ENVIRONMENT") or None,
        enabled=enabled and env.get("COSTLINE_ENABLED", "true").strip().lower() not in _FALSE,
    )


def strict() -> bool:
    """Re-raise the SDK's own errors instead of logging them (the SDK's tests set it)."""
    return os.environ.get("COSTLINE_SDK_STRICT", "").strip().lower() in {"1", "true", "yes"}
