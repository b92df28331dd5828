"""The time alerts, budgets and anomalies run on: injected, so tests move it instead of
sleeping. The API reads ``app.state.clock`` when a test sets one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def request_now(request: Request) -> datetime:
    clock: Clock = getattr(request.app.state, "clock", system_clock)
    return clock()


NowDep = Annotated[datetime, Depends(request_now)]
