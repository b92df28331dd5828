"""Keeping the host application safe from costline's own failures."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from costline._internal.settings import strict

logger = logging.getLogger("costline")

F = TypeVar("F", bound=Callable[..., Any])

_RATE_LIMIT_S = 60.0
_last_logged: dict[str, float] = {}
_lock = threading.Lock()


def _due(key: str) -> bool:
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(key)
        if last is not None and now - last < _RATE_LIMIT_S:
            return False
        _last_logged[key] = now
        return True


def warn_rate_limited(key: str, message: str, *args: object) -> None:
    """Log a warning at most once a minute per key."""
    if _due(key):
        logger.warning(message, *args)


def internal_error(where: str) -> None:
    """Call from an `except` block: log the SDK's own error once a minute, or re-raise if strict.

    Re-raising works because a bare `raise` re-raises the exception being handled.
    """
    if strict():
        raise
    if _due("internal:" + where):
        logger.warning(
            "costline: internal error in %s; the application continues", where, exc_info=True
        )


def guarded(where: str, default: Any = None) -> Callable[[F], F]:
    """Decorate an SDK entry point so that its failures never reach the application."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception:
                internal_error(where)
                return default

        return wrapper  # type: ignore[return-value]

    return decorate


def run_bounded(fn: Callable[[], object], timeout_s: float, name: str) -> tuple[bool, object]:
    """Run fn in a daemon thread and wait at most timeout_s: (finished, result)."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except Exception:
            logger.debug("costline: %s failed", name, exc_info=True)
            outcome.append(False)

    thread = threading.Thread(target=target, name=f"costline-{name}", daemon=True)
    thread.start()
    thread.join(max(timeout_s, 0.0))
    if thread.is_alive() or not outcome:
        return False, None
    return True, outcome[0]
